"""Helpers for the interoperability tests: the conformance suite, crane and regctl as
subprocesses, each in a scratch directory of its own (none of them writes outside it)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.zot import tool

TOOL_TIMEOUT = 240.0

_SUMMARY = re.compile(r"(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped")


@dataclass
class Summary:
    passed: int
    failed: int
    output: str


def run_conformance(url: str, workdir: Path, namespace: str = "conf") -> Summary:
    """The OCI conformance suite (pull, push, discovery, management) against `url`, run from
    an empty directory; its summary line parsed. The whole output is kept for messages."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "OCI_ROOT_URL": url,
        "OCI_NAMESPACE": f"{namespace}/repo",
        "OCI_CROSSMOUNT_NAMESPACE": f"{namespace}/other",
        "OCI_TEST_PULL": "1",
        "OCI_TEST_PUSH": "1",
        "OCI_TEST_CONTENT_DISCOVERY": "1",
        "OCI_TEST_CONTENT_MANAGEMENT": "1",
        "OCI_REPORT_DIR": "none",
    }
    proc = subprocess.run(
        [str(tool("oci-conformance")), "-ginkgo.no-color"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    found = _SUMMARY.findall(output)
    assert found, f"no summary line (exit {proc.returncode}):\n{output[-6000:]}"
    passed, failed, _, _ = (int(x) for x in found[-1])
    return Summary(passed, failed, output)


def assert_conformant(url: str, workdir: Path, namespace: str = "conf") -> None:
    summary = run_conformance(url, workdir, namespace)
    assert summary.failed == 0, summary.output[-12000:]
    # 74 of 79 with these four categories (the rest need settings we do not give).
    assert summary.passed >= 74, summary.output[-4000:]


@dataclass
class Client:
    """One client binary (crane or regctl) with a scratch HOME, so no state leaks."""

    binary: Path
    home: Path

    def __call__(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        argv: Sequence[str] = [str(self.binary), *args]
        proc = subprocess.run(
            argv,
            cwd=self.home,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.home)},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
            )
        return proc


@pytest.fixture
def crane(tmp_path: Path) -> Iterator[Client]:
    home = tmp_path / "crane-home"
    home.mkdir()
    yield Client(tool("crane"), home)


@pytest.fixture
def regctl(tmp_path: Path) -> Iterator[Client]:
    home = tmp_path / "regctl-home"
    home.mkdir()
    yield Client(tool("regctl"), home)
