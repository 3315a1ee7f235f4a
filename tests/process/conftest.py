"""Each process test gets servers of its own: they kill workers and whole instances."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import RegistryProcess, base_config

StartRegistry = Callable[..., RegistryProcess]


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[StartRegistry]:
    """Start `ocireg serve` with N workers on a fresh root; all are stopped at teardown."""
    started: list[RegistryProcess] = []

    def start(workers: int = 2, name: str = "ocireg") -> RegistryProcess:
        cfg = base_config(tmp_path / f"{name}-root", workers=workers)
        proc = RegistryProcess(tmp_path, cfg, name=name).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
