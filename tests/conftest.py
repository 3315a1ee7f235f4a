from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.backends import Redis, SeaweedFS, running_redis, running_seaweedfs
from tests.support.cluster import cluster_configs, start_members
from tests.support.server import RegistryProcess, base_config, running_registry
from tests.support.zot import TOOLS_ENV

# Fixtures shared by test modules of two folders (tests/auth and tests/interop).
pytest_plugins = ["tests.auth.workloads"]

# tests/interop/ runs zot, the OCI conformance suite, crane and regctl from a folder outside
# the repository (../shared/tools, on CI). `make test` must neither run nor need them, so
# pytest does not even collect that folder unless `make interop` passed the tools' path.
# (A top-level folder would do too, but then it would miss tests/support and this conftest's
# SeaweedFS and Redis fixtures.)
collect_ignore = [] if os.environ.get(TOOLS_ENV) else ["interop"]

# OCIREG_TEST_TOPOLOGY=cluster3 runs the API tests against member 0 of a three-member cluster
# over one shared root: about two thirds of the test repositories are owned by other members.
TOPOLOGY_ENV = "OCIREG_TEST_TOPOLOGY"
# OCIREG_TEST_BACKEND=s3: the instance(s) keep their data in SeaweedFS and their metadata in
# Redis instead of on local disk (make test runs tests/api that way too). Both combine.
BACKEND_ENV = "OCIREG_TEST_BACKEND"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS (master, volume, filer, S3 gateway) for the whole session."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def use_backend(
    cfg: dict[str, Any], seaweedfs: SeaweedFS, redis: Redis, rootdirectory: str, keyprefix: str
) -> dict[str, Any]:
    """Point a config at SeaweedFS + Redis (zot's keys); rootDirectory stays local (locks)."""
    cfg["storage"]["storageDriver"] = seaweedfs.storage_driver(rootdirectory)
    cfg["storage"]["remoteCache"] = True
    cfg["storage"]["cacheDriver"] = {"name": "redis", "url": redis.url, "keyprefix": keyprefix}
    return cfg


def s3_cluster_configs(
    workdir: Path, seaweedfs: SeaweedFS, redis: Redis, count: int = 3, **extra: Any
) -> list[dict[str, Any]]:
    """Configs of a cluster on one fresh SeaweedFS root and Redis prefix, each member with
    a local rootDirectory of its own (as on separate machines); `extra`: cluster_configs'."""
    root, prefix = f"/c{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    configs = cluster_configs(workdir, count=count, **extra)
    for i, cfg in enumerate(configs):
        cfg["storage"]["rootDirectory"] = str(workdir / f"local-{i}")
        use_backend(cfg, seaweedfs, redis, root, prefix)
    return configs


def backend_config(
    workdir: Path, seaweedfs: SeaweedFS, redis: Redis, rootdirectory: str, keyprefix: str
) -> dict[str, Any]:
    """A config for one instance on SeaweedFS + Redis."""
    return use_backend(base_config(workdir / "local"), seaweedfs, redis, rootdirectory, keyprefix)


def backend_registry_config(
    workdir: Path, backend: str, request: pytest.FixtureRequest, workers: int = 2
) -> dict[str, Any]:
    """A registry config on the local filesystem, or on SeaweedFS + Redis (a fresh bucket
    root and key prefix, so that the bucket holds only what the test stored)."""
    config = base_config(workdir / "root", workers=workers)
    if backend == "s3":
        name = uuid.uuid4().hex[:10]
        weed, redis = request.getfixturevalue("seaweedfs"), request.getfixturevalue("redis_server")
        use_backend(config, weed, redis, f"/ops-{name}", f"ops-{name}")
    return config


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryProcess]:
    """One registry instance (two worker processes) shared by the API tests: local disk by
    default; see TOPOLOGY_ENV and BACKEND_ENV."""
    workdir = tmp_path_factory.mktemp("registry")
    topology = os.environ.get(TOPOLOGY_ENV, "single")
    backend = os.environ.get(BACKEND_ENV, "filesystem")
    if topology not in ("single", "cluster3"):
        raise pytest.UsageError(
            f"{TOPOLOGY_ENV}: expected 'single' or 'cluster3', got {topology!r}"
        )
    if backend not in ("filesystem", "s3"):
        raise pytest.UsageError(f"{BACKEND_ENV}: expected 'filesystem' or 's3', got {backend!r}")
    configs = (
        cluster_configs(workdir, count=3, workers=2)
        if topology == "cluster3"
        else [base_config(workdir / "ocireg-root")]
    )
    if backend == "s3":
        weed, redis = request.getfixturevalue("seaweedfs"), request.getfixturevalue("redis_server")
        for i, cfg in enumerate(configs):
            cfg["storage"]["rootDirectory"] = str(workdir / f"local-{i}")
            use_backend(cfg, weed, redis, "/api", "api")
    if topology == "single":
        with running_registry(workdir, configs[0]) as proc:
            yield proc
        return
    members = start_members(workdir, configs)
    try:
        yield members[0]
    finally:
        for proc in members:
            proc.stop()


@pytest.fixture
def client(registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        yield c
