"""The OCI distribution-spec conformance suite (v1.1.1) against ocireg: 0 failed, in the three
topologies `make test` runs tests/api in, and against zot as the control."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import use_backend
from tests.interop.conftest import assert_conformant
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, start_members
from tests.support.server import base_config, running_registry
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow


def test_single_instance(tmp_path: Path) -> None:
    with running_registry(tmp_path) as proc:
        assert_conformant(proc.url, tmp_path / "conformance")


def test_through_a_member_of_a_three_member_cluster_on_one_root(tmp_path: Path) -> None:
    members = start_members(tmp_path, cluster_configs(tmp_path, count=3, workers=1))
    try:
        # Different namespaces: the suite's two repositories land on different owners.
        for i, namespace in enumerate(("conf", "other", "third")):
            assert_conformant(members[i].url, tmp_path / f"conformance-{i}", namespace)
    finally:
        for proc in members:
            proc.stop()


def test_on_seaweedfs_and_redis_through_a_cluster_member(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    configs = cluster_configs(tmp_path, count=3, workers=1)
    for i, cfg in enumerate(configs):
        cfg["storage"]["rootDirectory"] = str(tmp_path / f"local-{i}")
        use_backend(cfg, seaweedfs, redis_server, "/conformance", "conformance")
    members = start_members(tmp_path, configs)
    try:
        assert_conformant(members[1].url, tmp_path / "conformance")
    finally:
        for proc in members:
            proc.stop()


def test_zot_itself(tmp_path: Path) -> None:
    """The control: the same suite, the same way, passes on zot (so a failure above is ours)."""
    cfg = zot_config(base_config(tmp_path / "zot-root"))
    proc = ZotProcess(tmp_path, cfg, name="zot").start()
    try:
        assert_conformant(proc.url, tmp_path / "conformance")
    finally:
        proc.stop()
