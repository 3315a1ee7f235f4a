"""Start several real ocireg members on loopback that form one cluster."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocireg.cluster.routing import owner_index
from tests.support.server import RegistryProcess, base_config, free_port

HASH_KEY = "loremipsumdolors"


def cluster_configs(
    workdir: Path,
    count: int = 3,
    shared_root: bool = True,
    workers: int = 1,
    **extra: Any,
) -> list[dict[str, Any]]:
    """One config per member; every member lists all of them as 127.0.0.1:<port>."""
    # free_port() may hand out a port again once its probe socket is closed: two members on
    # one port would both bind it (SO_REUSEPORT) and the list would name one of them twice.
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    members = [f"127.0.0.1:{p}" for p in ports]
    configs = []
    for i, port in enumerate(ports):
        root = workdir / ("root" if shared_root else f"root-{i}")
        cfg = base_config(root, port=port, workers=workers, **copy.deepcopy(extra))
        cfg["cluster"] = {"members": list(members), "hashKey": HASH_KEY}
        configs.append(cfg)
    return configs


def start_members(
    workdir: Path, configs: list[dict[str, Any]], names: list[str] | None = None
) -> list[RegistryProcess]:
    """Start every member first, then wait for each: they come up in parallel."""
    names = names or [f"member{i}" for i in range(len(configs))]
    procs = [
        RegistryProcess(workdir, cfg, name=name).start(wait=False)
        for name, cfg in zip(names, configs, strict=True)
    ]
    try:
        for proc in procs:
            proc.wait_ready()
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs


@contextlib.contextmanager
def running_members(
    workdir: Path, configs: list[dict[str, Any]], names: list[str] | None = None
) -> Iterator[list[RegistryProcess]]:
    """`start_members`, and every member stopped at the end."""
    procs = start_members(workdir, configs, names)
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@contextlib.contextmanager
def running_cluster(
    workdir: Path, count: int = 3, shared_root: bool = True, workers: int = 1, **extra: Any
) -> Iterator[list[RegistryProcess]]:
    with running_members(
        workdir, cluster_configs(workdir, count, shared_root, workers, **extra)
    ) as procs:
        yield procs


def owner_of(repo: str, count: int = 3) -> int:
    return owner_index(repo, HASH_KEY.encode(), count)


def repo_owned_by(index: int, count: int = 3, prefix: str = "cluster") -> str:
    """A fresh repository name whose owner is member `index`."""
    while True:
        name = f"{prefix}/{uuid.uuid4().hex[:12]}"
        if owner_of(name, count) == index:
            return name
