"""Real clients pull through the mirror: skopeo addressing it directly, and podman with a
registries.conf mirror entry for an upstream name it cannot reach itself."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest

from tests.clients.conftest import Tools, require, tools  # noqa: F401  (the fixture)
from tests.clients.layout import build_image_layout, build_index_layout, read_tagged
from tests.support.oci import unique_repo
from tests.support.server import RegistryProcess
from tests.sync.conftest import Upstream, copy_to_upstream, mirror

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def pull_through(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> RegistryProcess:
    registries = [
        {
            "urls": [upstream.url],
            "onDemand": True,
            "content": [{"prefix": "library/**", "destination": "/docker"}],
        }
    ]
    with mirror(tmp_path_factory.mktemp("mirror"), registries) as proc:
        yield proc  # type: ignore[misc]


def skopeo(tools: Tools, *args: str) -> str:  # noqa: F811
    return tools.run([require("skopeo"), "--policy", str(tools.policy), *args]).stdout


def test_skopeo_copies_a_multi_arch_image_through_the_mirror(
    tools: Tools,  # noqa: F811
    upstream: Upstream,
    pull_through: RegistryProcess,
    tmp_path: Path,
) -> None:
    name = unique_repo("skopeo")
    src = tmp_path / "src"
    index = build_index_layout(src, "v1", seed=zlib.crc32(name.encode()), arches=("amd64", "arm64"))
    copy_to_upstream(tools, src, upstream, f"library/{name}")
    dst = tmp_path / "dst"
    skopeo(
        tools,
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://127.0.0.1:{pull_through.port}/docker/library/{name}:v1",
        f"oci:{dst}:v1",
    )
    copied = read_tagged(dst, "v1")
    assert copied["digest"] == index.digest
    # Every platform's manifest came along, by digest.
    children = json.loads((src / "blobs" / "sha256" / index.digest[7:]).read_bytes())
    for child in children["manifests"]:
        assert (dst / "blobs" / "sha256" / child["digest"][7:]).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="podman with vfs and no daemon is tested as root")
def test_podman_pulls_an_unreachable_upstream_name_from_its_mirror(
    tools: Tools,  # noqa: F811
    upstream: Upstream,
    pull_through: RegistryProcess,
    tmp_path: Path,
) -> None:
    name = unique_repo("podman")
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=zlib.crc32(name.encode()))
    copy_to_upstream(tools, src, upstream, f"library/{name}")
    # The name's own location does not answer: only the mirror can serve the pull.
    conf = Path(tools.env["CONTAINERS_REGISTRIES_CONF"])
    conf.write_text(
        conf.read_text() + "\n[[registry]]\n"
        'prefix = "hub.invalid/library"\n'
        'location = "127.0.0.1:9/library"\n'
        "insecure = true\n"
        "[[registry.mirror]]\n"
        f'location = "127.0.0.1:{pull_through.port}/docker/library"\n'
        "insecure = true\n"
    )
    podman = [
        require("podman"),
        *tools.storage_flags(),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]
    image = f"hub.invalid/library/{name}:v1"
    tools.run([*podman, "pull", "-q", f"--signature-policy={tools.policy}", image])
    info = json.loads(tools.run([*podman, "image", "inspect", image]).stdout)[0]
    assert info["RepoTags"] == [image]
    assert (pull_through.root / f"docker/library/{name}" / "index.json").exists()
