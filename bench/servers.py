"""The registries under test (ocireg, docker-registry and, where its binary exists, zot),
each on a free loopback port with storage in a temp dir."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.rawhttp import Connection

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """A running registry: `name` is "ocireg" or "peer"."""

    name: str
    label: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self) -> Connection:
        return Connection(self.host, self.port)

    def pids(self) -> list[int]:
        """The main process and its children (Granian workers)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [self.proc.pid, *(int(p) for p in out.stdout.split())]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def _spawn(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # A session of its own, so that stop() reaches the worker processes too.
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _wait_ready(target: Target, path: str, timeout: float = 30.0) -> Target:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited:\n{target.log_path.read_text()[-4000:]}")
        try:
            with target.connect() as conn:
                if conn.request("GET", path).status == 200:
                    return target
        except OSError:
            pass
        time.sleep(0.05)
    target.stop()
    raise TimeoutError(f"{target.name} not ready in {timeout}s:\n{target.log_path.read_text()}")


def start_ocireg(workdir: Path, workers: int | None, log_level: str = "warn") -> Target:
    """`python -m ocireg serve` from this checkout; `workers` None = ocireg's default."""
    port = free_port()
    root = workdir / "ocireg-root"
    http: dict[str, object] = {"address": "127.0.0.1", "port": str(port)}
    if workers is not None:
        http["workers"] = workers
    config = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root)},
        "http": http,
        "log": {"level": log_level},
    }
    config_path = workdir / "ocireg.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")])
    )
    log_path = workdir / "ocireg.log"
    proc = _spawn([sys.executable, "-m", "ocireg", "serve", str(config_path)], log_path, env)
    label = f"ocireg (workers={workers or os.cpu_count()})"
    return _wait_ready(Target("ocireg", label, port, root, proc, log_path), "/livez")


PEER_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
"""


def start_peer(workdir: Path) -> Target:
    """Debian's docker-registry (distribution 2.8), as Debian configures it, on loopback."""
    port = free_port()
    root = workdir / "peer-root"
    config_path = workdir / "peer.yml"
    config_path.write_text(PEER_CONFIG.format(root=root, port=port))
    log_path = workdir / "peer.log"
    proc = _spawn(["docker-registry", "serve", str(config_path)], log_path)
    return _wait_ready(Target("peer", "docker-registry", port, root, proc, log_path), "/v2/")


def peer_version() -> str:
    out = subprocess.run(
        ["docker-registry", "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip().split(" ")[-1] if out.returncode == 0 else "?"


# zot is not packaged: a static build sits in ../shared/tools on the project's machines
# (OCIREG_INTEROP_TOOLS, as `make interop` sets it, names another folder).
ZOT_TOOLS = REPO_ROOT.parent / "shared" / "tools"


def zot_binary() -> Path | None:
    folder = Path(os.environ.get("OCIREG_INTEROP_TOOLS") or ZOT_TOOLS)
    path = folder / "zot"
    return path if path.is_file() else None


def start_zot(workdir: Path, binary: Path, log_level: str = "warn") -> Target:
    """zot as it ships: its defaults (dedupe and GC on, every core), log level as the others."""
    port = free_port()
    root = workdir / "zot-root"
    config = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root)},
        "http": {"address": "127.0.0.1", "port": str(port)},
        "log": {"level": log_level},
    }
    config_path = workdir / "zot.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / "zot.log"
    proc = _spawn([str(binary), "serve", str(config_path)], log_path)
    return _wait_ready(Target("zot", "zot", port, root, proc, log_path), "/v2/")


def zot_version(binary: Path) -> str:
    """zot has no --version flag and logs its release only at info level: the version is
    the one the tools' README gives for it (its row: | `zot` | ... | project-zot/zot vX |)."""
    readme = binary.parent / "README.md"
    text = readme.read_text(errors="replace") if readme.is_file() else ""
    row = next((line for line in text.splitlines() if line.startswith("| `zot`")), "")
    found = re.search(r"\bv\d+\.\d+\.\d+\b", row)
    return found.group(0) if found else "?"
