"""skopeo and podman pull from an ocireg on SeaweedFS with `storage.redirectBlobURL` and
htpasswd auth: they follow each blob's 307 to the bucket and get the bytes from there.

Between the clients and SeaweedFS sits a recording proxy (`redirectendpoint` points at it),
which shows what the Go clients send to the bucket. Go's HTTP client resends the request's
`Authorization` on a redirect to the same host (recent Go: the same host name, whatever the
port), so with the bucket on the registry's host name the registry password would go to S3
(which AWS S3 refuses beside a query signature). A `redirectendpoint` on another name
(`localhost` here, the registry being `127.0.0.1`) keeps the credentials with the registry."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, write_htpasswd
from tests.clients.conftest import Tools, require
from tests.clients.layout import build_image_layout
from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS
from tests.support.recording_proxy import RecordingProxy, recording_proxy
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.clients

CREDS = f"alice:{PASSWORDS['alice']}"


@pytest.fixture(scope="module")
def bucket_proxy(seaweedfs: SeaweedFS) -> Iterator[RecordingProxy]:
    with recording_proxy(seaweedfs.endpoint) as proxy:
        yield proxy


def start_redirecting(
    workdir: Path, seaweedfs: SeaweedFS, redis: Redis, redirect_endpoint: str | None
) -> RegistryProcess:
    cfg = backend_config(
        workdir, seaweedfs, redis, f"/cr{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    )
    cfg["storage"]["redirectBlobURL"] = True
    if redirect_endpoint:
        cfg["storage"]["storageDriver"]["redirectendpoint"] = redirect_endpoint
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    cfg["http"]["accessControl"] = {
        "repositories": {"**": {"defaultPolicy": ["read", "create", "update"]}}
    }
    return RegistryProcess(workdir, cfg, name="redirect-clients").start()


@pytest.fixture(scope="module")
def registry_elsewhere(
    tmp_path_factory: pytest.TempPathFactory,
    seaweedfs: SeaweedFS,
    redis_server: Redis,
    bucket_proxy: RecordingProxy,
) -> Iterator[RegistryProcess]:
    """The registry on 127.0.0.1, the bucket's URLs on `localhost`: another host name."""
    workdir = tmp_path_factory.mktemp("redirect-localhost")
    endpoint = f"http://localhost:{bucket_proxy.port}"
    proc = start_redirecting(workdir, seaweedfs, redis_server, endpoint)
    yield proc
    proc.stop()


def skopeo(tools: Tools, *args: str) -> str:
    return tools.run([require("skopeo"), "--policy", str(tools.policy), *args]).stdout


def push_layout(tools: Tools, registry: RegistryProcess, src: Path, repo: str, seed: int) -> str:
    build_image_layout(src, "v1", seed=seed)
    target = f"docker://127.0.0.1:{registry.port}/{repo}:v1"
    skopeo(tools, "copy", "--dest-tls-verify=false", "--dest-creds", CREDS, f"oci:{src}:v1", target)
    return target


def layout_blobs(layout: Path) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def image_blobs(layout: Path) -> tuple[str, set[str]]:
    """The config digest and the layer digests of the layout's one image."""
    blobs = layout_blobs(layout)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blobs[index["manifests"][0]["digest"]])
    return manifest["config"]["digest"], {layer["digest"] for layer in manifest["layers"]}


def bucket_gets(proxy: RecordingProxy, since: int, digests: set[str]) -> list[str]:
    """The digests of `digests` the clients fetched from the bucket (200) after `since`."""
    hexes = {d.removeprefix("sha256:"): d for d in digests}
    return [
        hexes[seen.path.split("?")[0].rsplit("/", 1)[-1]]
        for seen in proxy.seen[since:]
        if seen.method == "GET"
        and seen.status == 200
        and seen.path.split("?")[0].rsplit("/", 1)[-1] in hexes
    ]


def test_skopeo_pull_with_auth_follows_redirects_to_the_bucket(
    tools: Tools, registry_elsewhere: RegistryProcess, bucket_proxy: RecordingProxy, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    target = push_layout(tools, registry_elsewhere, src, "redirect/skopeo", seed=71)
    pushed = layout_blobs(src)
    since = len(bucket_proxy.seen)

    skopeo(tools, "copy", "--src-tls-verify=false", "--src-creds", CREDS, target, f"oci:{dst}:v1")

    pulled = layout_blobs(dst)
    assert pulled == pushed  # every blob, byte for byte (the manifest too: same digest)
    # The config and layers came from the bucket, not through the registry...
    config, layers = image_blobs(src)
    blobs = layers | {config}
    assert sorted(set(bucket_gets(bucket_proxy, since, blobs))) == sorted(blobs)
    # ...and the registry password never went there: another host name.
    for seen in bucket_proxy.seen[since:]:
        assert "authorization" not in {k.lower() for k in seen.headers}, seen


def test_skopeo_pull_with_auth_and_the_default_endpoint(
    tools: Tools, tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """No `redirectendpoint`: the URLs name `regionendpoint`, SeaweedFS on 127.0.0.1 like the
    registry. The skopeo here (Go 1.19) compares host and port and drops `Authorization`;
    recent Go compares host names only and would send it along, which SeaweedFS ignores
    beside a query signature (AWS S3 refuses it): the pull works either way here."""
    registry = start_redirecting(tmp_path, seaweedfs, redis_server, None)
    try:
        src, dst = tmp_path / "src", tmp_path / "dst"
        target = push_layout(tools, registry, src, "redirect/default", seed=72)
        r = httpx.get(
            f"{registry.url}/v2/redirect/default/blobs/{image_blobs(src)[0]}",
            auth=httpx.BasicAuth("alice", PASSWORDS["alice"]),
        )
        assert r.status_code == 307
        assert r.headers["Location"].startswith(seaweedfs.endpoint + "/")
        skopeo(
            tools, "copy", "--src-tls-verify=false", "--src-creds", CREDS, target, f"oci:{dst}:v1"
        )
        assert layout_blobs(dst) == layout_blobs(src)
    finally:
        registry.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="podman with vfs and no daemon is tested as root")
def test_podman_pull_with_auth_follows_redirects_to_the_bucket(
    tools: Tools, registry_elsewhere: RegistryProcess, bucket_proxy: RecordingProxy, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    target = push_layout(tools, registry_elsewhere, src, "redirect/podman", seed=73)
    config_digest, layers = image_blobs(src)
    since = len(bucket_proxy.seen)

    image = target.removeprefix("docker://")
    tools.run(
        [
            require("podman"),
            *tools.storage_flags(),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "pull",
            "-q",
            f"--signature-policy={tools.policy}",
            "--tls-verify=false",
            "--creds",
            CREDS,
            image,
        ]
    )
    info = json.loads(
        tools.run([require("podman"), *tools.storage_flags(), "image", "inspect", image]).stdout
    )[0]
    # podman checked every blob against its digest; the image id is the config's digest.
    assert info["Id"] == config_digest.removeprefix("sha256:")
    fetched = set(bucket_gets(bucket_proxy, since, layers | {config_digest}))
    assert fetched == layers | {config_digest}
    for seen in bucket_proxy.seen[since:]:
        assert "authorization" not in {k.lower() for k in seen.headers}, seen
