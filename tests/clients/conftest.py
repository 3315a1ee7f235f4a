"""Fixtures for the real-client tests: a registry of their own and an isolated
containers/image + containers/storage environment (config files in a temp dir, vfs storage,
no daemon), so skopeo, podman and buildah neither read nor write the machine's state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import RegistryProcess, running_registry
from tests.support.tools import require

__all__ = ["TOOL_TIMEOUT", "Tools", "require"]

TOOL_TIMEOUT = 180.0


@dataclass
class Tools:
    """Runs the container tools with an environment and config files of their own."""

    env: dict[str, str]
    policy: Path
    storage_root: Path
    runroot: Path

    def run(
        self, argv: Sequence[str], timeout: float = TOOL_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
            )
        return proc

    def storage_flags(self) -> list[str]:
        """Global podman/buildah flags: vfs needs no kernel overlay support or privileges
        beyond root, and a private root keeps the tests away from the machine's images."""
        return [
            "--root",
            str(self.storage_root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
        ]


@pytest.fixture(scope="module")
def clients_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry of the client tests' own, so their repositories are theirs alone."""
    with running_registry(tmp_path_factory.mktemp("clients"), name="clients") as proc:
        yield proc


@pytest.fixture
def tools(tmp_path: Path) -> Iterator[Tools]:
    cfg = tmp_path / "containers-cfg"
    cfg.mkdir()
    storage_root = tmp_path / "storage"
    # podman refuses a runroot longer than 50 characters; pytest's tmp_path is longer.
    runroot = Path(tempfile.mkdtemp(prefix="ocireg-run-", dir="/tmp"))
    tmp = tmp_path / "tmp"
    for d in (storage_root, tmp, cfg / "xdg-runtime", cfg / "xdg-config"):
        d.mkdir(parents=True)
    policy = cfg / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    # No search registries: a name without a host must never resolve to the internet.
    # buildah insists that an auth file it is pointed at exists.
    (cfg / "auth.json").write_text(json.dumps({"auths": {}}))
    registries = cfg / "registries.conf"
    registries.write_text("unqualified-search-registries = []\n")
    storage = cfg / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{storage_root}"\nrunroot = "{runroot}"\n'
    )
    containers = cfg / "containers.conf"
    containers.write_text(
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{cfg / "events.log"}"\n'
        f'tmp_dir = "{runroot / "libpod"}"\n'
        f'image_copy_tmp_dir = "{tmp}"\n'
    )
    env = dict(os.environ)
    env.update(
        CONTAINERS_REGISTRIES_CONF=str(registries),
        CONTAINERS_STORAGE_CONF=str(storage),
        CONTAINERS_CONF=str(containers),
        REGISTRY_AUTH_FILE=str(cfg / "auth.json"),
        XDG_RUNTIME_DIR=str(cfg / "xdg-runtime"),
        XDG_CONFIG_HOME=str(cfg / "xdg-config"),
        TMPDIR=str(tmp),
    )
    # A proxy in the caller's environment must not capture loopback traffic.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    yield Tools(env=env, policy=policy, storage_root=storage_root, runroot=runroot)
    shutil.rmtree(runroot, ignore_errors=True)
