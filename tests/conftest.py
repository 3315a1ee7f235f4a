from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import RegistryProcess, running_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """One registry instance (two worker processes, local disk) shared by the API tests."""
    with running_registry(tmp_path_factory.mktemp("registry")) as proc:
        yield proc


@pytest.fixture
def client(registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        yield c
