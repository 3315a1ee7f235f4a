from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import running_cluster
from tests.support.server import RegistryProcess, running_registry

# OCIREG_TEST_TOPOLOGY=cluster3 runs the API tests against member 0 of a three-member cluster
# over one shared root: about two thirds of the test repositories are owned by other members.
TOPOLOGY_ENV = "OCIREG_TEST_TOPOLOGY"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """One registry instance (two worker processes, local disk) shared by the API tests."""
    workdir = tmp_path_factory.mktemp("registry")
    topology = os.environ.get(TOPOLOGY_ENV, "single")
    if topology == "cluster3":
        with running_cluster(workdir, count=3, workers=2) as members:
            yield members[0]
    elif topology == "single":
        with running_registry(workdir) as proc:
            yield proc
    else:
        raise pytest.UsageError(
            f"{TOPOLOGY_ENV}: expected 'single' or 'cluster3', got {topology!r}"
        )


@pytest.fixture
def client(registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        yield c
