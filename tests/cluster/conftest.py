"""Fixtures for multi-member tests: real ocireg processes on loopback forming one cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import running_cluster
from tests.support.server import RegistryProcess


@pytest.fixture(scope="module")
def separate_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryProcess]]:
    """Three members, each with its own storage root."""
    with running_cluster(tmp_path_factory.mktemp("separate"), shared_root=False) as members:
        yield members


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryProcess]]:
    """Three members over one storage root (the normal deployment)."""
    with running_cluster(tmp_path_factory.mktemp("shared")) as members:
        yield members
