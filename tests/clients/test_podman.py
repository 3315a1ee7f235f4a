"""podman and buildah push to and pull from ocireg.

Both run as root with the vfs storage driver in a private --root/--runroot (see the
`tools` fixture), so they need no daemon, no overlay support and touch no shared state.
Images come from an OCI layout built offline (podman) or are built from scratch
(buildah); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import Tools, require
from tests.clients.layout import OCI_MANIFEST, build_image_layout
from tests.support.server import RegistryProcess

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="podman/buildah with vfs and no daemon are tested as root"
    ),
]

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = f"{OCI_MANIFEST}, {DOCKER_V2}"


def podman(tools: Tools, *args: str) -> str:
    argv = [
        require("podman"),
        *tools.storage_flags(),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        *args,
    ]
    return tools.run(argv).stdout


def buildah(tools: Tools, *args: str) -> str:
    return tools.run([require("buildah"), *tools.storage_flags(), *args]).stdout


def registry_digest(registry: RegistryProcess, repo: str, tag: str) -> str:
    r = httpx.get(
        f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.headers["Docker-Content-Digest"]


def test_podman_push_and_pull(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=11)
    policy = f"--signature-policy={tools.policy}"
    image = f"127.0.0.1:{clients_registry.port}/podman/img:v1"

    podman(tools, "pull", "-q", policy, f"oci:{src}:v1")
    image_id = podman(tools, "images", "-q", "--no-trunc").split()
    assert len(image_id) == 1, image_id
    original_id = image_id[0]

    digestfile = tmp_path / "digest"
    podman(
        tools,
        "push",
        "-q",
        policy,
        "--tls-verify=false",
        "--digestfile",
        str(digestfile),
        original_id,
        f"docker://{image}",
    )
    pushed = digestfile.read_text().strip()
    assert registry_digest(clients_registry, "podman/img", "v1") == pushed

    podman(tools, "rmi", "-f", original_id)
    assert podman(tools, "images", "-q").split() == []

    podman(tools, "pull", "-q", policy, "--tls-verify=false", image)
    info = json.loads(podman(tools, "image", "inspect", image))[0]
    # The image id is the config digest: the same config came back.
    assert info["Id"].removeprefix("sha256:") == original_id.removeprefix("sha256:")
    assert info["Digest"] == pushed

    # A second push of the same image finds every blob present and keeps the digest.
    again = tmp_path / "digest2"
    podman(tools, "push", "-q", policy, "--tls-verify=false", "--digestfile", str(again), image)
    assert again.read_text().strip() == pushed


def test_buildah_push_and_pull(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    policy = f"--signature-policy={tools.policy}"
    image = f"127.0.0.1:{clients_registry.port}/buildah/img:v1"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(256 * 1024))

    ctr = buildah(tools, "from", policy, "scratch").strip()
    buildah(tools, "copy", ctr, str(payload), "/payload.bin")
    buildah(tools, "config", "--label", f"test.nonce={os.urandom(8).hex()}", ctr)
    built_id = buildah(tools, "commit", "-q", policy, ctr, "localhost/built:v1").strip()
    buildah(tools, "rm", ctr)

    digestfile = tmp_path / "digest"
    buildah(
        tools,
        "push",
        "-q",
        policy,
        "--tls-verify=false",
        "--digestfile",
        str(digestfile),
        "localhost/built:v1",
        f"docker://{image}",
    )
    pushed = digestfile.read_text().strip()
    assert registry_digest(clients_registry, "buildah/img", "v1") == pushed

    buildah(tools, "rmi", "-f", "localhost/built:v1")
    buildah(tools, "pull", "-q", policy, "--tls-verify=false", image)
    pulled = json.loads(buildah(tools, "images", "--json", "--no-trunc"))
    ids = {img["id"].removeprefix("sha256:") for img in pulled}
    assert ids == {built_id.removeprefix("sha256:")}

    # The layer really is the file we put in: mount the pulled image and read it back.
    ctr2 = buildah(tools, "from", policy, "--pull=never", image).strip()
    mnt = Path(buildah(tools, "mount", ctr2).strip())
    assert (mnt / "payload.bin").read_bytes() == payload.read_bytes()
    buildah(tools, "umount", ctr2)
    buildah(tools, "rm", ctr2)
