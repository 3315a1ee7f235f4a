"""Start real ocireg server processes on free loopback ports for the tests."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`, and this test process's to use.

    Under pytest-xdist the processes take turns at the ports (`_port_share`): between the
    moment a port is found free and the moment a server binds it, another process could be
    handed the same one, and Granian binds with SO_REUSEPORT, so two servers on one port
    would split its connections between them instead of one failing to start."""
    share, shares = _port_share()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(10_000):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        # Halved: Linux hands bind() odd ports first (even ones are kept for connect());
        # mod 10000: SeaweedFS's gRPC twin (port + 10000) stays in this process's share.
        if (port % 10_000 // 2) % shares == share:
            return port
    raise RuntimeError(f"no free port of share {share}/{shares} on {host}")


def _port_share() -> tuple[int, int]:
    """(this process's share, the number of shares): pytest-xdist's worker `gwN` of
    PYTEST_XDIST_WORKER_COUNT; (0, 1) outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0:
        return int(worker[2:]) % int(count), int(count)
    return 0, 1


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns a truthy value; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last error: {last_exc!r})")


def ocireg_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run `ocireg ARGS...` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ocireg", *args],
        env=ocireg_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RegistryProcess:
    """One `ocireg serve` process (with its Granian workers) on a loopback port."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        name: str = "ocireg",
        max_file_size: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.name = name
        # RLIMIT_FSIZE for the server's processes: writes past it fail with EFBIG, as on a
        # full disk (Python ignores SIGXFSZ), without needing a small filesystem.
        self.max_file_size = max_file_size
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = workdir / f"{name}-config.json"
        self.log_path = workdir / f"{name}.log"

    @property
    def port(self) -> int:
        return int(self.config["http"]["port"])

    @property
    def scheme(self) -> str:
        return "https" if self.config["http"].get("tls") else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return Path(self.config["storage"]["rootDirectory"])

    def start(self, timeout: float = 30.0, wait: bool = True) -> RegistryProcess:
        self.config_path.write_text(json.dumps(self.config, indent=2))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            env=ocireg_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that stop() reaches the Granian workers too
            preexec_fn=self._limit_file_size if self.max_file_size else None,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def command(self) -> list[str]:
        """The argv that serves `self.config_path` (tests/support/zot.py starts zot instead)."""
        return [sys.executable, "-m", "ocireg", "serve", str(self.config_path)]

    def _limit_file_size(self) -> None:
        assert self.max_file_size is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_size, self.max_file_size))

    def wait_ready(self, timeout: float = 30.0) -> None:
        def exited() -> bool:
            return self.proc is not None and self.proc.poll() is not None

        def up() -> bool:
            if exited():  # said at once below (wait_until would take it for "not yet")
                return True
            r = httpx.get(f"{self.url}/livez", timeout=1.0, verify=False)
            return r.status_code == 200

        try:
            wait_until(up, timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{self.name} not ready: {exc}\n{self.logs()}") from None
        if exited():
            assert self.proc is not None
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return ""

    def worker_pids(self) -> list[int]:
        """PIDs of the Granian worker processes (children of the main process)."""
        if self.proc is None:
            return []
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def base_config(
    root: Path, port: int | None = None, workers: int = 2, **extra: Any
) -> dict[str, Any]:
    """A zot-style config for one local-disk instance."""
    cfg: dict[str, Any] = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root)},
        "http": {"address": "127.0.0.1", "port": str(port or free_port()), "workers": workers},
        "log": {"level": "info"},
    }
    for key, value in extra.items():
        cfg[key] = value
    return cfg


@contextlib.contextmanager
def running_registry(
    workdir: Path, config: dict[str, Any] | None = None, name: str = "ocireg", workers: int = 2
) -> Iterator[RegistryProcess]:
    cfg = config or base_config(workdir / f"{name}-root", workers=workers)
    proc = RegistryProcess(workdir, cfg, name=name).start()
    try:
        yield proc
    finally:
        proc.stop()
