from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backends import Redis, SeaweedFS, running_redis, running_seaweedfs
from tests.support.server import RegistryProcess, base_config, running_registry

# OCIREG_TEST_BACKEND=s3: the `registry` instance keeps its data in SeaweedFS and its
# metadata in Redis instead of on local disk (make test runs tests/api both ways).
BACKEND = os.environ.get("OCIREG_TEST_BACKEND", "filesystem")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS (master, volume, filer, S3 gateway) for the whole session."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def backend_config(
    workdir: Path, seaweedfs: SeaweedFS, redis: Redis, rootdirectory: str, keyprefix: str
) -> dict[str, object]:
    """A config for one instance on SeaweedFS + Redis (zot's keys)."""
    cfg = base_config(workdir / "local")
    cfg["storage"]["storageDriver"] = seaweedfs.storage_driver(rootdirectory)
    cfg["storage"]["remoteCache"] = True
    cfg["storage"]["cacheDriver"] = {"name": "redis", "url": redis.url, "keyprefix": keyprefix}
    return cfg


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryProcess]:
    """One registry instance (two worker processes) shared by the API tests: on local disk,
    or on SeaweedFS + Redis with OCIREG_TEST_BACKEND=s3."""
    workdir = tmp_path_factory.mktemp("registry")
    config = None
    if BACKEND == "s3":
        config = backend_config(
            workdir,
            request.getfixturevalue("seaweedfs"),
            request.getfixturevalue("redis_server"),
            "/api",
            "api",
        )
    with running_registry(workdir, config) as proc:
        yield proc


@pytest.fixture
def client(registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        yield c
