"""zot's storage served by ocireg and ocireg's by zot, on local disk and on S3 (SeaweedFS).

The two take turns on one storage (zot keeps BoltDB files under its root and must be alone
there): the first writes content and serves it, stops; the second serves it, writes more,
stops; the first comes back and serves both. Images, a multi-arch index, tags, referrers (an
artifact whose subject is the index) and the catalog are read back whole each time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import use_backend
from tests.interop.scenario import Content, check_content, check_referrers, write_content
from tests.support.backends import BUCKET, Redis, SeaweedFS
from tests.support.oci import push_blob, random_bytes, sha256_digest
from tests.support.server import RegistryProcess, base_config
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow


def start(kind: str, workdir: Path, cfg: dict[str, Any], turn: int) -> RegistryProcess:
    name = f"{kind}-{turn}"
    if kind == "zot":
        return ZotProcess(workdir, zot_config(cfg), name=name).start()
    return RegistryProcess(workdir, cfg, name=name).start()


def take_turns(
    workdir: Path, cfg: dict[str, Any], first: str, names: tuple[str, str] | None = None
) -> list[Content]:
    """`names`: the two repositories each turn writes, formatted with the writer's name
    (default: new ones under a prefix naming it)."""
    second = "ocireg" if first == "zot" else "zot"
    written: list[Content] = []
    for turn, kind in enumerate((first, second, first)):
        proc = start(kind, workdir, cfg, turn)
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as client:
                for content in written:
                    check_content(client, content)
                if turn < 2:
                    writer = f"{kind}{turn}"
                    repo, other = (n.format(writer) for n in names) if names else (None, None)
                    written.append(write_content(client, writer, repo, other))
                    check_content(client, written[-1])
        finally:
            proc.stop()
    return written


@pytest.mark.parametrize("first", ["zot", "ocireg"])
def test_one_root_on_local_disk(tmp_path: Path, first: str) -> None:
    take_turns(tmp_path, base_config(tmp_path / "root"), first)


@pytest.mark.parametrize("first", ["zot", "ocireg"])
def test_sub_paths_on_local_disk(tmp_path: Path, first: str) -> None:
    """zot's `storage.subPaths`: a repository named under `/team` lives under the sub path's
    root, with its whole name, whichever of the two wrote it; one outside it (and `team`
    alone) under the default root."""
    cfg = base_config(tmp_path / "root")
    team = tmp_path / "team-root"
    cfg["storage"]["subPaths"] = {"/team": {"rootDirectory": str(team), "dedupe": True}}
    written = take_turns(tmp_path, cfg, first, ("team/{}/app", "{}"))
    for content in written:
        assert (team / content.repo / "index.json").is_file()
        assert not (tmp_path / "root" / content.repo).exists()
        assert (tmp_path / "root" / content.other_repo / "index.json").is_file()
        assert not (team / content.other_repo).exists()


@pytest.mark.parametrize("first", ["zot", "ocireg"])
def test_one_bucket_and_redis(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis, first: str
) -> None:
    """The same config file for both: S3 for the data, Redis for zot's dedupe cache and
    metadata and for ocireg's indexes (under one key prefix, as one deployment would)."""
    cfg = base_config(tmp_path / "local")
    use_backend(cfg, seaweedfs, redis_server, f"/exchange-{first}", f"exchange-{first}")
    take_turns(tmp_path, cfg, first)


def s3_sub_paths(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis, first: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """zot's config-s3.json on SeaweedFS, with Redis for the default: `/team` on S3 under
    a prefix of the default's bucket, with zot's dedupe (a local cache file: zot takes Redis
    for the default storage only), `/ext` in another bucket. zot wants a local root of its
    own for each storage on S3 (its cache files); ocireg reads and ignores those keys.
    Returns the config and each sub path's bucket and key prefix."""
    cfg = base_config(tmp_path / "local")
    use_backend(cfg, seaweedfs, redis_server, f"/sub-{first}", f"sub-{first}")
    other = seaweedfs.make_bucket("ocireg-exchange")
    cfg["storage"]["subPaths"] = {
        "/team": {
            "rootDirectory": str(tmp_path / "team-cache"),
            "dedupe": True,
            "remoteCache": False,
            "storageDriver": seaweedfs.storage_driver(f"/team-{first}"),
        },
        "/ext": {
            "rootDirectory": str(tmp_path / "ext-cache"),
            "storageDriver": seaweedfs.storage_driver(f"/ext-{first}", bucket=other),
        },
    }
    places = {
        "team": f"{BUCKET}/team-{first}/team-{first}",
        "ext": f"{other}/ext-{first}/ext-{first}",
    }
    return cfg, places


@pytest.mark.parametrize("first", ["zot", "ocireg"])
def test_sub_paths_on_s3(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis, first: str
) -> None:
    """Sub paths on S3 (each its own driver: a prefix of the default's bucket, another
    bucket), served in turn by zot and ocireg from one config file: each reads what the
    other wrote, under the bucket and prefix of its first name component."""
    cfg, places = s3_sub_paths(tmp_path, seaweedfs, redis_server, first)
    written = take_turns(tmp_path, cfg, first, ("team/{}/app", "ext/{}"))
    client = seaweedfs.client()
    for content in written:
        for repo, place in ((content.repo, places["team"]), (content.other_repo, places["ext"])):
            bucket, _, prefix = place.partition("/")
            client.head_object(Bucket=bucket, Key=f"{prefix}/{repo}/index.json")


def test_zot_dedupe_stubs_in_a_sub_path_on_s3(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """zot with dedupe in a sub path on S3 leaves a zero-byte stub in the second repository
    that receives a blob (its original recorded in a cache file ocireg does not read):
    ocireg serves the stub's bytes from the copy another repository of the sub path holds."""
    cfg, places = s3_sub_paths(tmp_path, seaweedfs, redis_server, "stubs")
    layer = random_bytes(4096)
    digest = sha256_digest(layer)
    zot = start("zot", tmp_path, cfg, 0)
    try:
        with httpx.Client(base_url=zot.url, timeout=30.0) as client:
            for repo in ("team/a", "team/b"):
                push_blob(client, repo, layer)
    finally:
        zot.stop()
    bucket, _, prefix = places["team"].partition("/")
    sizes = {
        repo: seaweedfs.client().head_object(
            Bucket=bucket, Key=f"{prefix}/{repo}/blobs/sha256/{digest[7:]}"
        )["ContentLength"]
        for repo in ("team/a", "team/b")
    }
    assert sorted(sizes.values()) == [0, len(layer)], sizes  # one stub, one original
    proc = start("ocireg", tmp_path, cfg, 1)
    try:
        with httpx.Client(base_url=proc.url, timeout=30.0) as client:
            for repo in ("team/a", "team/b"):
                r = client.get(f"/v2/{repo}/blobs/{digest}")
                assert r.status_code == 200 and r.content == layer, (repo, r.status_code)
    finally:
        proc.stop()


def test_referrers_zot_added_while_ocireg_was_away(tmp_path: Path) -> None:
    """ocireg's referrers index (sqlite/Redis), once built, learns of manifests another
    writer (zot) added to index.json since: each is looked at once on the next query."""
    root = base_config(tmp_path / "root")
    for turn, kind in enumerate(("ocireg", "zot", "ocireg")):
        proc = start(kind, tmp_path, root, turn)
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as client:
                if turn == 0:
                    # A referrers query makes ocireg build its index; from then on it trusts it.
                    check_referrers(client, write_content(client, "ocireg"))
                elif turn == 1:
                    content = write_content(client, "zot")
                else:
                    check_referrers(client, content)
        finally:
            proc.stop()
