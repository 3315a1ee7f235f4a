"""A cluster of one zot and one ocireg member on one S3 bucket (and one Redis), zot's
scale-out way: the same config file, the same hash, so both agree on every owner. Content
whose repositories either member owns is pushed through each member and read back whole
through every member; both orders of the member list."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import use_backend
from tests.interop.conftest import assert_conformant
from tests.interop.scenario import Content, check_content, write_content
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, owner_of, repo_owned_by
from tests.support.oci import OCI_MANIFEST, assert_error, manifest_path, push_image, push_manifest
from tests.support.server import RegistryProcess
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def mixed_cluster(
    workdir: Path,
    seaweedfs: SeaweedFS,
    redis: Redis,
    kinds: tuple[str, str],
    prefix: str,
    shared: bool = False,
) -> Iterator[list[RegistryProcess]]:
    """Member i is `kinds[i]`; both read the same config but for their port and local root.
    `shared`: the ocireg member is told that every member shares its storage
    (`cluster.sharedStorage: true`, ocireg's key: zot writes no records to find it by)."""
    configs = cluster_configs(workdir, count=2, workers=1)
    procs: list[RegistryProcess] = []
    for i, (kind, cfg) in enumerate(zip(kinds, configs, strict=True)):
        cfg["storage"]["rootDirectory"] = str(workdir / f"local-{i}")
        use_backend(cfg, seaweedfs, redis, f"/{prefix}", prefix)
        if kind == "zot":
            procs.append(ZotProcess(workdir, zot_config(cfg), name=f"zot{i}").start(wait=False))
        else:
            if shared:
                cfg["cluster"]["sharedStorage"] = True
            procs.append(RegistryProcess(workdir, cfg, name=f"ocireg{i}").start(wait=False))
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def owned_content(client: httpx.Client, owner: int, prefix: str) -> Content:
    """write_content into two repositories that member `owner` (of 2) owns."""
    repos = [repo_owned_by(owner, 2, prefix) for _ in range(2)]
    return write_content(client, prefix, *repos)


@pytest.mark.parametrize("kinds", [("zot", "ocireg"), ("ocireg", "zot")], ids="-".join)
def test_pushes_and_pulls_through_every_member(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis, kinds: tuple[str, str]
) -> None:
    prefix = "mixed-" + "-".join(kinds)
    with mixed_cluster(tmp_path, seaweedfs, redis_server, kinds, prefix) as procs:
        clients = [httpx.Client(base_url=p.url, timeout=30.0) for p in procs]
        written: list[Content] = []
        for client in clients:
            for owner, kind in enumerate(kinds):
                written.append(owned_content(client, owner, f"{prefix}/{kind}"))
                # Read back at once, and everything so far: each member's caches and
                # indexes must follow what the other wrote since.
                for reader in clients:
                    for content in written:
                        check_content(reader, content)


def test_a_member_down_and_back(tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis) -> None:
    """zot's way, which ocireg follows until the shared-storage data path lands: requests for
    a repository go to its owner, so while the owner is down its repositories are 503 (JSON,
    at once) through the other member, whose own repositories stay served; once the owner is
    back, everything is served through both again (the pooled connections to the restarted
    owner are replaced)."""
    prefix = "mixed-down"
    with mixed_cluster(tmp_path, seaweedfs, redis_server, ("zot", "ocireg"), prefix) as procs:
        zot, oci = procs
        zot_client = httpx.Client(base_url=zot.url, timeout=30.0)
        oci_client = httpx.Client(base_url=oci.url, timeout=30.0)
        zots = owned_content(oci_client, 0, f"{prefix}/zot")
        ocis = owned_content(zot_client, 1, f"{prefix}/ocireg")

        zot.stop()
        check_content(oci_client, ocis)
        r = oci_client.get(manifest_path(zots.repo, "amd64"), headers={"Accept": OCI_MANIFEST})
        assert_error(r, 503, "UNAVAILABLE")
        zot.start()
        for client in (zot_client, oci_client):
            check_content(client, zots)
            check_content(client, ocis)

        oci.stop()
        check_content(zot_client, zots)
        oci.start()
        for client in (zot_client, oci_client):
            check_content(client, zots)
            check_content(client, ocis)


def test_conformance_through_each_member_to_the_other(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """The conformance suite through each member, on repositories the *other* member owns:
    ocireg forwarding to zot, and zot forwarding to ocireg."""
    prefix = "mixed-conformance"
    with mixed_cluster(tmp_path, seaweedfs, redis_server, ("zot", "ocireg"), prefix) as procs:
        for entry, proc in enumerate(procs):
            namespace = next(
                f"{prefix}/n{i}" for i in range(1000) if owner_of(f"{prefix}/n{i}/repo", 2) != entry
            )
            assert_conformant(proc.url, tmp_path / f"conformance-{entry}", namespace)


def test_a_zot_owner_down_fails_over_to_ocireg_on_declared_shared_storage(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """With `sharedStorage: true`, ocireg answers reads of zot's repositories itself, and while
    the zot owner is down it takes pushes to them too; zot, back, serves all of it."""
    prefix = "mixed-failover"
    with mixed_cluster(
        tmp_path, seaweedfs, redis_server, ("zot", "ocireg"), prefix, shared=True
    ) as procs:
        zot, oci = procs
        zot_client = httpx.Client(base_url=zot.url, timeout=30.0)
        oci_client = httpx.Client(base_url=oci.url, timeout=30.0)
        before = owned_content(oci_client, 0, f"{prefix}/zot")  # index writes go to zot
        zot.stop()
        check_content(oci_client, before)
        during = owned_content(oci_client, 0, f"{prefix}/zot-down")  # failover: written here
        check_content(oci_client, during)
        zot.start()
        for content in (before, during):
            check_content(zot_client, content)
            check_content(oci_client, content)


def test_tags_zot_moves_are_read_at_once_through_ocireg(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """zot keeps no index-version keys, and announces no `x-ocireg-index-versions` on
    /livez: while it is a member, the ocireg member asks storage which index.json is current
    (docs/storage.md), so a tag zot moves is read right after through ocireg, which answers
    reads of zot's repositories itself on shared storage."""
    prefix = "mixed-versions"
    kinds = ("zot", "ocireg")
    with mixed_cluster(tmp_path, seaweedfs, redis_server, kinds, prefix, shared=True) as procs:
        zot = httpx.Client(base_url=procs[0].url, timeout=30.0)
        oci = httpx.Client(base_url=procs[1].url, timeout=30.0)
        repo = repo_owned_by(0, 2, prefix)
        images = [push_image(zot, repo, f"i{n}") for n in range(3)]
        for n in range(15):
            image = images[n % 3]
            r = push_manifest(zot, repo, "latest", image.manifest, image.media_type)
            assert r.status_code == 201, r.text
            for _ in range(3):
                r = oci.get(manifest_path(repo, "latest"), headers={"Accept": OCI_MANIFEST})
                assert r.status_code == 200, r.text
                assert r.headers["docker-content-digest"] == image.digest, n
