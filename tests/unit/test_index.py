"""index.json in-process: the tag/descriptor rules of `Index`, and `IndexCache` over a real
filesystem driver (no HTTP, no server)."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocireg.digest import Digest
from ocireg.meta.sqlite import SqliteMeta
from ocireg.registry import layout
from ocireg.registry.index import (
    INDEX_MEDIA_TYPE,
    KEEP,
    REF_NAME,
    Batch,
    Index,
    IndexCache,
    SetTag,
    is_kept,
    tag_of,
)
from ocireg.storage.filesystem import FilesystemDriver

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
A, B = (str(Digest.of(x)) for x in (b"a", b"b"))


def desc(digest: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": MANIFEST, "digest": digest, "size": 1, **extra}


def test_set_tag_adds_a_tagged_descriptor() -> None:
    index = Index()
    index.set_tag("v1", desc(A))
    assert index.tags() == ["v1"]
    assert index.by_tag("v1") == desc(A, annotations={REF_NAME: "v1"})


def test_moving_a_tag_leaves_the_old_manifest_untagged_not_gone() -> None:
    index = Index()
    index.set_tag("v1", desc(A, annotations={"keep": "me"}))
    index.set_tag("v1", desc(B))
    assert tag_of(index.by_tag("v1") or {}) == "v1"
    assert (index.by_tag("v1") or {})["digest"] == B
    old = index.by_digest(A)
    assert old == desc(A, annotations={"keep": "me"})  # the ref name gone, the rest kept
    assert index.digests() == [A, B]


def test_tagging_an_untagged_manifest_replaces_its_untagged_descriptor() -> None:
    index = Index()
    index.add_untagged(desc(A))
    index.set_tag("v1", desc(A))
    assert len(index.manifests) == 1
    assert index.tags() == ["v1"]


def test_a_kept_manifest_stays_kept_when_tagged_and_when_the_tag_moves() -> None:
    index = Index()
    index.add_untagged(desc(A, annotations={KEEP: "why"}))
    index.set_tag("v1", desc(A))
    assert index.by_tag("v1") == desc(A, annotations={KEEP: "why", REF_NAME: "v1"})
    index.set_tag("v1", desc(B))
    assert index.by_digest(A) == desc(A, annotations={KEEP: "why"})
    assert is_kept(index.by_digest(A) or {}) and not is_kept(index.by_digest(B) or {})


def test_a_second_tag_on_the_same_digest_is_a_second_descriptor() -> None:
    index = Index()
    index.set_tag("v1", desc(A))
    index.set_tag("v2", desc(A))
    assert index.tags() == ["v1", "v2"]
    assert index.digests() == [A]
    assert index.remove_tag("v1")
    assert index.tags() == ["v2"]
    assert len(index.manifests) == 1  # v2 still reaches A: no untagged copy added


def test_add_untagged_does_not_duplicate_a_known_digest() -> None:
    index = Index()
    index.set_tag("v1", desc(A))
    index.add_untagged(desc(A))
    assert len(index.manifests) == 1


def test_removing_the_last_tag_keeps_the_manifest_by_digest() -> None:
    index = Index()
    index.set_tag("v1", desc(A))
    assert index.remove_tag("v1")
    assert index.tags() == []
    assert index.by_digest(A) == desc(A)
    assert not index.remove_tag("v1")


def test_remove_digest_removes_every_descriptor_of_it() -> None:
    index = Index()
    index.set_tag("v1", desc(A))
    index.set_tag("v2", desc(A))
    index.add_untagged(desc(B))
    assert index.remove_digest(A)
    assert index.digests() == [B]
    assert not index.remove_digest(A)


def test_parse_and_dump_keep_unknown_keys_and_drop_malformed_entries() -> None:
    raw = {"schemaVersion": 2, "annotations": {"x": "y"}, "manifests": [desc(A), "junk", 3]}
    index = Index.parse(json.dumps(raw).encode())
    assert index.manifests == [desc(A)]
    out = json.loads(index.dump())
    assert out["annotations"] == {"x": "y"}
    assert out["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert out["manifests"] == [desc(A)]


@pytest.mark.parametrize("data", [b"[]", b'"x"', b"not json"])
def test_parse_rejects_what_is_not_an_index(data: bytes) -> None:
    with pytest.raises(ValueError):
        Index.parse(data)


def test_tag_of_ignores_malformed_annotations() -> None:
    assert tag_of({"annotations": "v1"}) is None
    assert tag_of({"annotations": {REF_NAME: 1}}) is None


# --- IndexCache over the filesystem driver -------------------------------------------------


def cache(root: Path) -> IndexCache:
    return IndexCache(FilesystemDriver(root), SqliteMeta(root / "meta.db"))


def test_missing_repository_loads_as_none(tmp_path: Path) -> None:
    assert asyncio.run(cache(tmp_path).load("nope")) is None


def test_update_creates_index_json_and_load_reads_it(tmp_path: Path) -> None:
    c = cache(tmp_path)

    async def run() -> Index | None:
        result = await c.update("r", lambda i: i.set_tag("v1", desc(A)))
        assert result is None
        return await c.load("r")

    loaded = asyncio.run(run())
    assert loaded is not None and loaded.tags() == ["v1"]
    on_disk = json.loads((tmp_path / layout.index("r")).read_bytes())
    assert [tag_of(d) for d in on_disk["manifests"]] == ["v1"]


def test_load_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    c = cache(tmp_path)
    other = cache(tmp_path)  # another process's cache over the same root

    async def run() -> None:
        await c.update("r", lambda i: i.set_tag("v1", desc(A)))
        first = await c.load("r")
        assert first is await c.load("r")  # same file version: the parsed copy is reused
        await other.update("r", lambda i: i.set_tag("v2", desc(B)))
        fresh = await c.load("r")
        assert fresh is not first
        assert fresh is not None and fresh.tags() == ["v1", "v2"]

    asyncio.run(run())


def test_update_returns_what_the_change_returns(tmp_path: Path) -> None:
    c = cache(tmp_path)

    async def run() -> tuple[bool, bool]:
        await c.update("r", lambda i: i.set_tag("v1", desc(A)))
        removed = await c.update("r", lambda i: i.remove_tag("v1"))
        again = await c.update("r", lambda i: i.remove_tag("v1"))
        return removed, again

    assert asyncio.run(run()) == (True, False)


def test_cache_is_bounded(tmp_path: Path) -> None:
    c = IndexCache(FilesystemDriver(tmp_path), SqliteMeta(tmp_path / "meta.db"), max_entries=2)

    async def run() -> None:
        for repo in ("a", "b", "c"):
            await c.update(repo, lambda i: i.add_untagged(desc(A)))
            await c.load(repo)

    asyncio.run(run())
    assert len(c._cache) == 2


def test_an_index_given_to_a_reader_is_never_changed_by_later_writes(tmp_path: Path) -> None:
    c = cache(tmp_path)
    other = cache(tmp_path)  # another process: its writes reach `c` through the journal

    async def run() -> None:
        await c.update("r", lambda i: i.set_tag("v1", desc(A)))
        held = await c.load("r")
        assert held is not None
        await c.update("r", lambda i: i.set_tag("v2", desc(A)))
        await other.update("r", lambda i: i.set_tag("v3", desc(B)))
        await c.update("r", lambda i: i.set_tag("v4", desc(A)))
        assert held.tags() == ["v1"]
        assert held.dump() == Index([desc(A, annotations={REF_NAME: "v1"})]).dump()
        now = await c.load("r")
        assert now is not None and now.tags() == ["v1", "v2", "v3", "v4"]

    asyncio.run(run())


def test_consecutive_writes_without_readers_match_the_file(tmp_path: Path) -> None:
    # Changed in place (nobody holds the cached index), replayed from the other cache's
    # journal, and after a change that failed half-way: what is served is what is stored.
    c = cache(tmp_path)
    other = cache(tmp_path)

    def half_then_fail(index: Index) -> None:
        index.set_tag("never", desc(B))
        raise RuntimeError("change failed")

    async def run() -> None:
        for n in range(5):
            await c.update("r", lambda i, n=n: i.set_tag(f"c{n}", desc(A)))
            await other.update("r", lambda i, n=n: i.set_tag(f"o{n}", desc(B)))
        with pytest.raises(RuntimeError):
            await c.update("r", half_then_fail)
        for each in (c, other):
            loaded = await each.load("r")
            assert loaded is not None
            assert loaded.dump() == (tmp_path / layout.index("r")).read_bytes()
            assert "never" not in loaded.tags()
            assert len(loaded.tags()) == 10

    asyncio.run(run())


def _reference(index: Index) -> bytes:
    """index.json as a plain `json.dumps` of the whole document writes it."""
    doc = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, **index.extra}
    doc.pop("manifests", None)
    return json.dumps({**doc, "manifests": index.manifests}, separators=(",", ":")).encode()


@pytest.mark.parametrize("seed", range(6))
def test_pieces_are_the_whole_document_after_any_changes(seed: int) -> None:
    """The kept text (a joined body with holes, and a tail; `_Text`) gives the same bytes
    as serializing everything, through adds, moves, removals, copies and parses, across
    many joins of the body."""
    rng = random.Random(seed)
    digests = [str(Digest.of(str(i).encode())) for i in range(40)]
    index = Index.parse(b'{"schemaVersion":2,"manifests":[],"x":[1]}') if seed % 2 else Index()
    held: list[tuple[Index, bytes]] = []
    for step in range(1500):
        roll = rng.random()
        if roll < 0.5:
            index.set_tag(f"t{rng.randrange(400)}", desc(rng.choice(digests)))
        elif roll < 0.6:
            index.add_untagged(desc(rng.choice(digests)))
        elif roll < 0.75:
            index.remove_tag(f"t{rng.randrange(400)}")
        elif roll < 0.78:
            index.remove_digest(rng.choice(digests))
        elif roll < 0.8:  # a reader keeps this one; later changes go to a copy
            held.append((index, index.dump()))
            index = index.copy()
        elif roll < 0.81:  # read back, as another process would
            index = Index.parse(index.dump())
        if step % 7 == 0 or roll < 0.2:
            assert index.dump() == _reference(index)
            assert b"".join(index.pieces()) == index.dump()
    assert json.loads(index.dump())["manifests"] == index.manifests
    for old, dumped in held:  # the copies' changes did not reach them
        assert old.dump() == dumped == _reference(old)


def test_writes_after_an_outside_writer_keep_its_entries_and_write_ours_whole(
    tmp_path: Path,
) -> None:
    """An index.json another writer made (zot: indented, its own key order and fields),
    replaced by us and by another process taking turns, tags moved and removed well past a
    join of the kept text (`_Text`): the file is always the whole document, every entry of
    the outside writer kept as it was parsed, and what each cache serves."""
    outside = [desc(A, annotations={REF_NAME: f"z{i}", "x": "y"}, platform={}) for i in range(6)]
    doc = {"manifests": [dict(reversed(d.items())) for d in outside], "schemaVersion": 2}
    path = tmp_path / layout.index("r")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc, indent=4))
    c, other = cache(tmp_path), cache(tmp_path)
    model = Index.parse(path.read_bytes())  # the same changes, never written

    async def change(writer: IndexCache, step: Callable[[Index], object]) -> None:
        step(model)
        await writer.update("r", step)
        stored = path.read_bytes()
        assert stored == _reference(Index.parse(stored))
        assert json.loads(stored)["manifests"] == model.manifests

    async def run() -> None:
        for n in range(200):
            writer = (c, other)[n % 2]
            digest = (A, B)[n % 3 == 0]
            await change(writer, lambda i, n=n, d=digest: i.set_tag(f"t{n % 150}", desc(d)))
            if n % 5 == 0:
                await change(writer, lambda i, n=n: i.remove_tag(f"t{n // 2}"))
        for each in (c, other):
            loaded = await each.load("r")
            assert loaded is not None and loaded.dump() == path.read_bytes()
            assert loaded.manifests[:6] == outside
            assert [t for t in loaded.tags() if t.startswith("z")] == [f"z{i}" for i in range(6)]

    asyncio.run(run())


@pytest.mark.parametrize("seed", range(4))
def test_a_beginning_and_what_follows_it_are_the_whole_document(seed: int) -> None:
    """`begin` then `after` (a write begun before its last entries are known): `after`
    answers when only new tags were added since `begin`, on the index or on a copy of it;
    when it answers, the descriptors `begin` wrote are still the first ones and its answer
    completes the document. (After a tag moved or removed, or a parse, it may not.)"""
    rng = random.Random(seed)
    digests = [str(Digest.of(str(i).encode())) for i in range(40)]
    index, fresh = Index(), 0
    for _ in range(400):
        begun, entries = index.begin(), index.manifests
        if rng.random() < 0.2:
            index = index.copy()
        pure = True  # only new tags, of manifests never listed before
        for _ in range(rng.randrange(4)):
            roll = rng.random()
            pure = pure and roll < 0.6
            if roll < 0.6:
                fresh += 1
                index.set_tag(f"new{fresh}", desc(str(Digest.of(f"fresh{fresh}".encode()))))
            elif roll < 0.8:  # a tag moved, a second descriptor, an untagged one replaced
                index.set_tag(f"new{rng.randrange(fresh + 1)}", desc(rng.choice(digests)))
            elif roll < 0.9:
                index.remove_tag(f"new{rng.randrange(fresh + 1)}")
            else:
                index = Index.parse(index.dump())
        if begun is None:
            continue
        now = index.manifests
        added = len(now) > len(entries)
        rest = index.after(begun[0])
        assert rest is not None or not (pure and added)
        if rest is not None:
            assert added and all(a is b for a, b in zip(entries, now[: len(entries)], strict=True))
            assert b"".join([*begun[1], *rest]) == index.dump()
    assert index.dump() == _reference(index)


def test_an_update_begun_ahead_writes_what_a_whole_write_would(tmp_path: Path) -> None:
    """`IndexCache.draft` then `update`: the begun file is the one renamed into place when
    the change only added tags; otherwise (a tag moved, or another process wrote
    meanwhile) the index is written whole. Either way the file is the whole document and
    no temporary is left."""
    c, other = cache(tmp_path), cache(tmp_path)
    folder = tmp_path / "r"

    def begun() -> Path:
        (path,) = folder.glob(".index.json.*.tmp")
        return path

    async def run() -> None:
        for n in range(300):
            await c.update("r", lambda i, n=n: i.set_tag(f"t{n}", desc(A)))
        draft = await c.draft("r")
        assert draft is not None
        inode = begun().stat().st_ino
        await c.update("r", Batch([SetTag("u1", desc(B)), SetTag("u2", desc(A))]), draft)
        assert (folder / "index.json").stat().st_ino == inode  # the begun file, finished
        for change, writer in ((SetTag("t5", desc(B)), c), (SetTag("u3", desc(B)), other)):
            draft = await c.draft("r")
            assert draft is not None
            inode = begun().stat().st_ino
            if writer is other:  # another process writes first: the draft is stale
                await other.update("r", lambda i: i.set_tag("o1", desc(A)))
            await c.update("r", change, draft)
            assert (folder / "index.json").stat().st_ino != inode
        loaded = await c.load("r")
        assert loaded is not None
        assert loaded.dump() == (folder / "index.json").read_bytes()
        assert loaded.dump() == _reference(loaded)
        assert {"u1", "u2", "u3", "o1"} <= set(loaded.tags())
        assert (loaded.by_tag("t5") or {})["digest"] == B

    asyncio.run(run())
    assert os.listdir(folder) == ["index.json"]
