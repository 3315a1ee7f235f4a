"""The journal of index changes in the metadata store, and `Index` as the write path keeps
it: two `IndexCache`s over one filesystem driver and sqlite store stand for two workers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ocireg.meta.sqlite import SqliteMeta
from ocireg.registry.index import (
    REF_NAME,
    AddUntagged,
    Batch,
    Index,
    IndexCache,
    RemoveDigest,
    RemoveTag,
    SetTag,
)
from ocireg.storage.filesystem import FilesystemDriver

A = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "a" * 64,
    "size": 1,
}
B = {**A, "digest": "sha256:" + "b" * 64}


def tags_of(index: Index) -> dict[str, str]:
    return {d["annotations"][REF_NAME]: d["digest"] for d in index.manifests if "annotations" in d}


def test_set_tag_moves_a_tag_and_keeps_the_old_manifest_untagged() -> None:
    index = Index()
    index.set_tag("v1", A)
    index.set_tag("v1", B)
    assert tags_of(index) == {"v1": B["digest"]}
    assert index.by_digest(A["digest"]) == A  # untagged, reachable by digest
    assert index.digests() == [B["digest"], A["digest"]] or set(index.digests()) == {
        A["digest"],
        B["digest"],
    }


def test_dump_is_the_json_of_the_entries_in_order_and_parses_back() -> None:
    index = Index(extra={"annotations": {"x": "y"}})
    for n in range(50):
        index.set_tag(f"t{n}", A if n % 2 else B)
    index.remove_tag("t10")
    doc = json.loads(index.dump())
    assert doc["schemaVersion"] == 2 and doc["annotations"] == {"x": "y"}
    assert doc["manifests"] == index.manifests
    again = Index.parse(index.dump())
    assert again.dump() == index.dump()
    assert Index().dump() == Index.parse(Index().dump()).dump()


def test_entries_with_the_same_tag_twice_are_kept() -> None:
    tagged = {**A, "annotations": {REF_NAME: "v1"}}
    index = Index([tagged, {**tagged, "digest": B["digest"]}])
    assert len(index.manifests) == 2
    assert index.by_tag("v1") == tagged  # the first, as a scan of the file would find


def test_copy_leaves_the_original_alone() -> None:
    index = Index()
    index.set_tag("v1", A)
    index.dump()
    copy = index.copy()
    copy.set_tag("v2", B)
    copy.remove_tag("v1")
    assert tags_of(index) == {"v1": A["digest"]}
    assert json.loads(index.dump())["manifests"] == index.manifests


def test_remove_digest_removes_every_tag_on_it() -> None:
    index = Index()
    for tag in ("a", "b", "c"):
        index.set_tag(tag, A)
    index.set_tag("d", B)
    assert index.remove_digest(A["digest"])
    assert tags_of(index) == {"d": B["digest"]}
    assert index.by_digest(A["digest"]) is None
    assert not index.remove_digest(A["digest"])


@pytest.fixture
def caches(tmp_path: Path) -> tuple[IndexCache, IndexCache, FilesystemDriver]:
    driver = FilesystemDriver(tmp_path / "root")
    return (
        IndexCache(driver, SqliteMeta(tmp_path / "meta.db")),
        IndexCache(driver, SqliteMeta(tmp_path / "meta.db")),
        driver,
    )


def test_another_process_replays_the_journal_instead_of_reading_the_file(
    caches: tuple[IndexCache, IndexCache, FilesystemDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two, driver = caches

    async def scenario() -> None:
        await one.update("r", SetTag("v1", A))
        assert tags_of(await two.load("r")) == {"v1": A["digest"]}  # reads the file
        reads = 0
        real = driver.get_versioned

        async def counted(path: str) -> tuple[bytes, str]:
            nonlocal reads
            reads += 1
            return await real(path)

        monkeypatch.setattr(driver, "get_versioned", counted)
        await one.update(
            "r", Batch([SetTag("v2", B), AddUntagged({**A, "digest": "sha256:" + "c" * 64})])
        )
        await one.update("r", RemoveTag("v1"))
        await one.update("r", RemoveDigest("sha256:" + "c" * 64))
        seen = await two.load("r")
        assert reads == 0, "the second cache read the file instead of replaying"
        fresh = Index.parse((await real("r/index.json"))[0])
        assert seen is not None and seen.dump() == fresh.dump()
        assert tags_of(seen) == {"v2": B["digest"]}
        # A change the journal does not know (garbage collection's) means reading the file.
        await one.update("r", lambda index: index.set_tag("gc", A))
        assert tags_of(await two.load("r")) == {"v2": B["digest"], "gc": A["digest"]}
        assert reads == 1

    asyncio.run(scenario())
