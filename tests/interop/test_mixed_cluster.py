"""A cluster of one zot and one ocireg member on one S3 bucket (and one Redis), zot's
scale-out way: the same config file, the same hash, so both agree on every owner. Content
whose repositories either member owns is pushed through each member and read back whole
through every member; both orders of the member list."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import use_backend
from tests.interop.scenario import Content, check_content, write_content
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, repo_owned_by
from tests.support.server import RegistryProcess
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kinds", [("zot", "ocireg"), ("ocireg", "zot")], ids="-".join)
def test_pushes_and_pulls_through_every_member(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis, kinds: tuple[str, str]
) -> None:
    configs = cluster_configs(tmp_path, count=2, workers=1)
    prefix = "mixed-" + "-".join(kinds)
    procs: list[RegistryProcess] = []
    for i, (kind, cfg) in enumerate(zip(kinds, configs, strict=True)):
        cfg["storage"]["rootDirectory"] = str(tmp_path / f"local-{i}")
        use_backend(cfg, seaweedfs, redis_server, f"/{prefix}", prefix)
        if kind == "zot":
            procs.append(ZotProcess(tmp_path, zot_config(cfg), name=f"zot{i}").start(wait=False))
        else:
            procs.append(RegistryProcess(tmp_path, cfg, name=f"ocireg{i}").start(wait=False))
    try:
        for proc in procs:
            proc.wait_ready()
        clients = [httpx.Client(base_url=p.url, timeout=30.0) for p in procs]
        written: list[Content] = []
        for client in clients:
            for owner, kind in enumerate(kinds):
                repos = [repo_owned_by(owner, 2, f"{prefix}/{kind}") for _ in range(2)]
                written.append(write_content(client, prefix, *repos))
                # Read back at once, and everything so far: each member's caches and
                # indexes must follow what the other wrote since.
                for reader in clients:
                    for content in written:
                        check_content(reader, content)
    finally:
        for proc in procs:
            proc.stop()
