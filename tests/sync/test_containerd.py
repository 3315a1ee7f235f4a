"""containerd pulls a Docker Hub-style name through ocireg as its mirror (a `hosts.toml`
under `--hosts-dir`), the way a Kubernetes node is pointed at a pull-through cache. The
name's own registry is unreachable here, so only the mirror can serve the pull."""

from __future__ import annotations

import contextlib
import os
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.conftest import Tools, tools  # noqa: F401  (the fixture)
from tests.clients.layout import build_image_layout, build_index_layout
from tests.support.oci import unique_repo
from tests.support.server import RegistryProcess, wait_until
from tests.support.tools import require
from tests.sync.conftest import Upstream, copy_to_upstream, mirror

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(os.geteuid() != 0, reason="containerd runs as root"),
]

CTR_TIMEOUT = 120


@dataclass
class Containerd:
    socket: Path
    hosts_dir: Path
    log: Path

    def ctr(self, *args: str) -> str:
        argv = [require("ctr"), "--address", str(self.socket), "--namespace", "ocireg", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CTR_TIMEOUT)
        assert proc.returncode == 0, f"{argv}: {proc.stderr}\n{self.log.read_text()[-2000:]}"
        return proc.stdout

    def pull(self, image: str, *flags: str) -> None:
        self.ctr("images", "pull", "--hosts-dir", str(self.hosts_dir), *flags, image)


@contextlib.contextmanager
def running_containerd(workdir: Path) -> Iterator[Containerd]:
    """A containerd of its own (root, state, socket under `workdir`), with only what a
    pull needs: no CRI plugin."""
    binary = require("containerd")
    socket = workdir / "containerd.sock"
    config = workdir / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{workdir / "root"}"\n'
        f'state = "{workdir / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket}"\n'
        f'[ttrpc]\n  address = "{socket}.ttrpc"\n'
        f'[debug]\n  address = "{socket}.debug"\n'
    )
    log = workdir / "containerd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    daemon = Containerd(socket, workdir / "hosts", log)
    try:
        wait_until(lambda: proc.poll() is None and socket.exists() and daemon.ctr("version"))
        yield daemon
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    with running_containerd(tmp_path_factory.mktemp("containerd")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def hub_mirror(
    upstream: Upstream, containerd: Containerd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    """ocireg mapping the upstream's `library/**` under `docker/`, and containerd's
    `docker.io` pointed at it: `docker.io/library/x` -> `<mirror>/v2/docker/library/x`."""
    registries = [
        {
            "urls": [upstream.url],
            "onDemand": True,
            "content": [{"prefix": "library/**", "destination": "/docker"}],
        }
    ]
    with mirror(tmp_path_factory.mktemp("mirror"), registries) as proc:
        hosts = containerd.hosts_dir / "docker.io"
        hosts.mkdir(parents=True, exist_ok=True)
        (hosts / "hosts.toml").write_text(
            # docker.io's own server stays the fallback: it is unreachable from here.
            'server = "https://registry-1.docker.io"\n'
            f'[host."http://127.0.0.1:{proc.port}/v2/docker"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            "  override_path = true\n"
        )
        yield proc


def test_containerd_pulls_a_hub_name_from_the_mirror(
    tools: Tools,  # noqa: F811
    upstream: Upstream,
    containerd: Containerd,
    hub_mirror: RegistryProcess,
    tmp_path: Path,
) -> None:
    name = unique_repo("containerd")
    manifest = build_image_layout(tmp_path / "src", "v1", seed=zlib.crc32(name.encode()))
    copy_to_upstream(tools, tmp_path / "src", upstream, f"library/{name}")
    image = f"docker.io/library/{name}:v1"
    containerd.pull(image, "--snapshotter", "native")
    listed = containerd.ctr("images", "list", "--quiet")
    assert image in listed.split()
    assert manifest.digest in containerd.ctr("images", "list")
    # The mirror stored what it fetched under the mapped name, tag included.
    assert (hub_mirror.root / f"docker/library/{name}" / "index.json").exists()


def test_containerd_pulls_every_platform_of_an_index_from_the_mirror(
    tools: Tools,  # noqa: F811
    upstream: Upstream,
    containerd: Containerd,
    hub_mirror: RegistryProcess,
    tmp_path: Path,
) -> None:
    name = unique_repo("containerd-multi")
    src = tmp_path / "src"
    index = build_index_layout(src, "v1", seed=zlib.crc32(name.encode()), arches=("amd64", "arm64"))
    copy_to_upstream(tools, src, upstream, f"library/{name}")
    image = f"docker.io/library/{name}:v1"
    containerd.pull(image, "--all-platforms")
    assert index.digest in containerd.ctr("images", "list")
    # Both platforms' content is now in containerd's store, fetched through the mirror.
    content = containerd.ctr("content", "list", "--quiet").split()
    stored = (hub_mirror.root / f"docker/library/{name}/blobs/sha256").iterdir()
    assert {f"sha256:{p.name}" for p in stored} <= set(content)
