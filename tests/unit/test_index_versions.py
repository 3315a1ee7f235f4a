"""The index-version protocol (registry/versions.py) step by step: two `IndexCache`s over one
driver and one metadata store stand for two members, and each race of docs/storage.md is
played in a fixed order. The protocol does not depend on the driver, so a real filesystem
driver and a real sqlite store are used, with the keys kept as they are on S3 + Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ocireg.meta import MetaUnavailable
from ocireg.meta.sqlite import SqliteMeta
from ocireg.registry import layout, versions
from ocireg.registry.index import Index, IndexCache, SetTag
from ocireg.storage import FileInfo
from ocireg.storage.filesystem import FilesystemDriver

REPO = "r"
A = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "a" * 64}
B = {**A, "digest": "sha256:" + "b" * 64}
C = {**A, "digest": "sha256:" + "c" * 64}


class CountingDriver(FilesystemDriver):
    """The filesystem driver, counting the reads of index.json (what S3 would be asked)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: Counter[str] = Counter()

    async def stat(self, path: str, files_only: bool = False) -> FileInfo:
        self.calls["stat"] += 1
        return await super().stat(path)

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        self.calls["get"] += 1
        return await super().get_versioned(path)


Body = Callable[[CountingDriver, SqliteMeta, IndexCache, IndexCache], Awaitable[None]]


def play(tmp_path: Path, body: Body) -> None:
    async def main() -> None:
        driver = CountingDriver(tmp_path / "root")
        meta = SqliteMeta(tmp_path / "meta.db")
        one, two = (IndexCache(driver, meta, keep_versions=True) for _ in range(2))
        await driver.put_content(layout.index(REPO), Index().dump())
        try:
            await body(driver, meta, one, two)
        finally:
            await meta.close()

    asyncio.run(main())


async def tag(cache: IndexCache, name: str) -> str | None:
    index = await cache.load(REPO)
    assert index is not None
    desc = index.by_tag(name)
    return None if desc is None else str(desc["digest"])


def test_a_write_is_read_at_once_elsewhere_then_without_storage(tmp_path: Path) -> None:
    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        for n, desc in enumerate([A, B, C, A, B] * 4):
            await (one if n % 2 else two).update(REPO, SetTag("t", desc))
            assert await tag(one, "t") == desc["digest"]
            assert await tag(two, "t") == desc["digest"]
        driver.calls.clear()
        for _ in range(20):
            assert await tag(one, "t") == B["digest"]
            assert await tag(two, "t") == B["digest"]
        assert driver.calls == Counter()  # the key and the caches answered

    play(tmp_path, body)


def test_a_repository_not_cached_is_read_without_a_stat(tmp_path: Path) -> None:
    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        await meta.clear()  # no key: what `rebuild-meta` and a flushed Redis see
        driver.calls.clear()
        assert await tag(two, "t") == A["digest"]
        assert driver.calls == Counter(get=1)
        await meta.clear()
        driver.calls.clear()
        assert await tag(one, "t") == A["digest"]  # cached: a stat says it is current
        assert driver.calls == Counter(stat=1)

    play(tmp_path, body)


def test_a_claim_overtaken_by_a_write_never_sets_the_older_version(tmp_path: Path) -> None:
    """Reader: key unknown -> claim -> read storage (old) ... writer marks, writes, settles
    ... reader heals with the old version: refused, the key names the write."""

    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        await meta.set_index_version(REPO, versions.new_token(), 60)  # unknown
        seen = await meta.index_version(REPO)
        claim = await one.versions.claim(REPO, seen)
        assert claim is not None
        old = await one._stored(REPO)
        assert old is not None
        await two.update(REPO, SetTag("t", B))  # acknowledged here
        await one.versions.heal(REPO, claim, old[0])
        assert versions.version_of(await meta.index_version(REPO)) != old[0]
        assert await tag(one, "t") == B["digest"]

    play(tmp_path, body)


def test_a_heal_inside_a_write_makes_the_writer_leave_a_token(tmp_path: Path) -> None:
    """Writer marks; a reader claims the writer's token, reads storage before the write
    lands and heals with that version; the writer's settle then fails and it leaves a fresh
    token, so no reader after the acknowledgement believes the older version."""

    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        path = layout.index(REPO)
        data, before = await driver.get_versioned(path)
        mark = await two.versions.mark(REPO)
        claim = await one.versions.claim(REPO, mark)
        assert claim is not None
        old = await one._stored(REPO)
        assert old is not None and old[0] == before
        await one.versions.heal(REPO, claim, old[0])
        assert versions.version_of(await meta.index_version(REPO)) == before
        index = Index.parse(data)
        index.set_tag("t", B)
        written = await driver.put_if(path, index.dump(), before)
        assert written is not None
        await two.versions.settle(REPO, mark, written)  # the swap fails: a token instead
        value = await meta.index_version(REPO)
        assert value is not None and versions.version_of(value) is None
        assert await tag(one, "t") == B["digest"]

    play(tmp_path, body)


def test_a_write_between_a_key_read_and_the_cache_is_seen_next_time(tmp_path: Path) -> None:
    """A read that began before a write may answer the old tag; the next one may not."""

    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        assert await tag(two, "t") == A["digest"]
        await one.update(REPO, SetTag("t", B))
        driver.calls.clear()
        assert await tag(two, "t") == B["digest"]  # replayed from the journal
        assert driver.calls == Counter()

    play(tmp_path, body)


def test_a_foreign_write_is_seen_when_the_key_goes(tmp_path: Path) -> None:
    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        assert await tag(two, "t") == A["digest"]
        index = Index()
        index.set_tag("t", C)
        await driver.put_content(layout.index(REPO), index.dump())  # a zot, say
        await meta.clear()  # what expiry (or a rebuild) does to the key
        assert await tag(two, "t") == C["digest"]
        assert await tag(one, "t") == C["digest"]
        assert versions.version_of(await meta.index_version(REPO)) is not None  # healed

    play(tmp_path, body)


def test_a_key_that_storage_contradicts_is_not_believed(tmp_path: Path) -> None:
    """A process without the index in its cache reads the file; if the file's version is
    not the key's, it takes storage's word and heals the key."""

    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        await meta.set_index_version(REPO, "v:not-the-file", 60)
        assert await tag(two, "t") == A["digest"]
        assert versions.version_of(await meta.index_version(REPO)) != "not-the-file"

    play(tmp_path, body)


def test_concurrent_reads_share_one_key_read_started_after_them(tmp_path: Path) -> None:
    async def body(driver: CountingDriver, meta: SqliteMeta, one: IndexCache, two: IndexCache):
        await one.update(REPO, SetTag("t", A))
        reads = Counter[str]()
        real = meta.index_version

        async def counted(repo: str) -> str | None:
            reads["key"] += 1
            await asyncio.sleep(0.01)
            return await real(repo)

        meta.index_version = counted  # type: ignore[method-assign]
        found = await asyncio.gather(*(tag(two, "t") for _ in range(50)))
        assert found == [A["digest"]] * 50
        assert reads["key"] <= 2  # one round, and at most one more for late arrivals

    play(tmp_path, body)


def test_a_store_down_before_the_write_fails_it_and_storage_is_unchanged(
    tmp_path: Path,
) -> None:
    """The mark cannot be made: the write is not made either (the request gets 503)."""
    from ocireg.meta.redis import RedisMeta
    from ocireg.settings.drivers import RedisSettings
    from tests.support.server import free_port

    async def main() -> None:
        driver = CountingDriver(tmp_path / "root")
        nowhere = RedisSettings.from_map(
            {"name": "redis", "url": f"redis://127.0.0.1:{free_port()}"}
        )
        meta = RedisMeta(nowhere)  # nothing listens there
        cache = IndexCache(driver, meta, keep_versions=True)
        await driver.put_content(layout.index(REPO), Index().dump())
        before = await driver.get_versioned(layout.index(REPO))
        try:
            with pytest.raises(MetaUnavailable):
                await cache.update(REPO, SetTag("t", B))
        finally:
            await meta.close()
        assert await driver.get_versioned(layout.index(REPO)) == before

    asyncio.run(main())
