"""One behaviour suite for every storage driver. A driver binds it in three lines:

    class TestFilesystemDriver(DriverSuite):
        def make_driver(self) -> StorageDriver:
            return FilesystemDriver(self.tmp / "root")

Each test gets a fresh, empty driver and runs its coroutine on a fresh event loop; the
teardown fails when a test leaves anything behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ocireg.storage import InvalidPath, PathNotFound, StorageDriver

Body = Callable[[StorageDriver], Awaitable[None]]
MiB = 1 << 20
# Pieces per batch: tiny, one small, many received pieces (past the writev limit), big.
_BATCH_SIZES = [(10,), (300_000,), (417_792,) * 3, (1_000,) * 600, (5 * MiB, 1), (7,)] * 3


class DriverSuite:
    tmp: Path

    def make_driver(self) -> StorageDriver:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _workdir(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def run(self, body: Body, clean: bool = True) -> None:
        run_on(self.make_driver(), body, clean)

    # --- small objects -------------------------------------------------------------------

    def test_put_get_roundtrip(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.put_content("a/b/c", b"hello")
            assert await d.get_content("a/b/c") == b"hello"
            await d.put_content("a/b/c", b"replaced")
            assert await d.get_content("a/b/c") == b"replaced"

        self.run(body)

    def test_missing_object_is_path_not_found(self) -> None:
        async def body(d: StorageDriver) -> None:
            for call in (d.get_content, d.stat, d.list, d.delete):
                with pytest.raises(PathNotFound):
                    await call("nope/x")
            with pytest.raises(PathNotFound):
                await read_all(d, "nope/x")

        self.run(body)

    def test_invalid_paths_are_refused(self) -> None:
        async def body(d: StorageDriver) -> None:
            for bad in ("/abs", "a/../b", "a/./b", "a\x00b"):
                with pytest.raises(InvalidPath):
                    await d.put_content(bad, b"x")

        self.run(body)

    def test_stat_reports_size_dir_and_version(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.put_content("r/f", b"12345")
            info = await d.stat("r/f")
            assert (info.size, info.is_dir) == (5, False)
            assert (await d.stat("r")).is_dir
            await d.put_content("r/f", b"123456")
            assert (await d.stat("r/f")).version != info.version

        self.run(body)

    def test_stat_of_files_only_finds_no_directory(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.put_content("r/sub/f", b"123")
            assert (await d.stat("r/sub/f", files_only=True)).size == 3
            for path in ("r", "r/sub", "r/none"):
                with pytest.raises(PathNotFound):
                    await d.stat(path, files_only=True)

        self.run(body)

    def test_sized_reader_gives_the_size_and_every_byte(self) -> None:
        async def body(d: StorageDriver) -> None:
            data = os.urandom(3 << 20)  # more than one piece on either driver
            await d.put_content("r/sub/f", data)
            size, pieces = await d.sized_reader("r/sub/f")
            async with contextlib.aclosing(pieces):
                got = b"".join([piece async for piece in pieces])
            assert (size, got) == (len(data), data)
            for path in ("r", "r/sub", "r/none"):
                with pytest.raises(PathNotFound):
                    await d.sized_reader(path)

        self.run(body)

    def test_list_marks_directories_and_sorts(self) -> None:
        async def body(d: StorageDriver) -> None:
            for p in ("top/b", "top/a", "top/sub/x", "top/sub/deeper/y", "other"):
                await d.put_content(p, b"x")
            assert await d.list("top") == ["a", "b", "sub/"]
            assert await d.list("") == ["other", "top/"]

        self.run(body)

    def test_delete_file_and_tree(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.put_content("t/one", b"1")
            await d.put_content("t/two/three", b"3")
            await d.delete("t/one")
            with pytest.raises(PathNotFound):
                await d.stat("t/one")
            await d.delete("t")
            with pytest.raises(PathNotFound):
                await d.list("t")

        self.run(body)

    def test_move_overwrites_and_copy_keeps_source(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.put_content("m/src", b"new")
            await d.put_content("m/dst", b"old")
            await d.move("m/src", "m/dst")
            assert await d.get_content("m/dst") == b"new"
            with pytest.raises(PathNotFound):
                await d.stat("m/src")
            await d.copy("m/dst", "n/copy")
            assert await d.get_content("n/copy") == b"new"
            assert await d.get_content("m/dst") == b"new"
            with pytest.raises(PathNotFound):
                await d.move("m/absent", "m/x")

        self.run(body)

    def test_conditional_put(self) -> None:
        async def body(d: StorageDriver) -> None:
            assert await d.put_if("c/index.json", b"v1", None)
            assert not await d.put_if("c/index.json", b"again", None)  # exists already
            data, version = await d.get_versioned("c/index.json")
            assert data == b"v1"
            assert version == (await d.stat("c/index.json")).version
            assert await d.put_if("c/index.json", b"v2", version)
            assert not await d.put_if("c/index.json", b"stale", version)
            assert await d.get_content("c/index.json") == b"v2"

        self.run(body)

    def test_conditional_put_of_pieces(self) -> None:
        """index.json handed over in pieces (views of a kept text, `Index.pieces`): stored
        as their join, small (written inline) and large (in a thread, in several writes)."""
        big = os.urandom(3 * MiB + 5)
        large: list[bytes | memoryview] = [b"{", memoryview(big)[1:], b"x" * 700, b"}"]
        small: list[bytes | memoryview] = [b"[", memoryview(b"abcdef")[2:4], b"]"]

        async def body(d: StorageDriver) -> None:
            version = await d.put_if("p/index.json", large, None)
            assert version == (await d.stat("p/index.json")).version
            assert await d.get_content("p/index.json") == b"{" + big[1:] + b"x" * 700 + b"}"
            assert await d.put_if("p/index.json", small, version)
            assert not await d.put_if("p/index.json", small, version)
            assert await d.get_content("p/index.json") == b"[cd]"

        self.run(body)

    def test_a_draft_finished_is_a_conditional_put_of_the_whole(self) -> None:
        """A file's next version begun before its end is known (`draft`, for index.json):
        finished, it is in place as if put whole, under the same condition; finished on a
        stale version, or discarded, it leaves nothing (the teardown looks). A driver may
        decline to draft (an object store)."""
        big = os.urandom(3 * MiB + 5)

        async def body(d: StorageDriver) -> None:
            first = await d.put_if("f/index.json", b"v1", None)
            draft = await d.draft("f/index.json", [b"{", memoryview(big)[1:]])
            if draft is None:
                return
            version = await draft.finish([b"x" * 700, b"}"], first)
            assert version == (await d.stat("f/index.json")).version
            assert await d.get_content("f/index.json") == b"{" + big[1:] + b"x" * 700 + b"}"
            stale = await d.draft("f/index.json", b"{")
            assert stale is not None
            assert await stale.finish(b"}", first) is None
            assert await d.get_content("f/index.json") == b"{" + big[1:] + b"x" * 700 + b"}"
            dropped = await d.draft("f/index.json", big)
            assert dropped is not None
            await dropped.discard()
            await dropped.discard()  # once is enough; twice is harmless
            assert await d.list("f") == ["index.json"]

        self.run(body)

    # --- streams ---------------------------------------------------------------------------

    def test_reader_ranges(self) -> None:
        data = os.urandom(3 * MiB + 123)

        async def body(d: StorageDriver) -> None:
            await d.put_content("s/blob", data)
            assert await read_all(d, "s/blob") == data
            assert await read_all(d, "s/blob", 10, 100) == data[10:110]
            assert await read_all(d, "s/blob", 2 * MiB) == data[2 * MiB :]
            assert await read_all(d, "s/blob", 5, 0) == b""

        self.run(body)

    def test_writer_makes_object_visible_after_commit(self) -> None:
        async def body(d: StorageDriver) -> None:
            w = await d.writer("w/obj")
            await w.write([b"a" * 100])
            await w.write([b"b" * 100])
            await w.commit()
            await w.close()
            assert await d.get_content("w/obj") == b"a" * 100 + b"b" * 100

        self.run(body)

    def test_writer_keeps_the_order_of_many_batches(self) -> None:
        # Batches of pieces as an upload hands them on: small ones written at once, large
        # ones queued (the filesystem writer's thread), all in order once committed.
        batches = [[os.urandom(n) for n in sizes] for sizes in _BATCH_SIZES]
        expected = b"".join(b"".join(batch) for batch in batches)

        async def body(d: StorageDriver) -> None:
            w = await d.writer("w/batches")
            for batch in batches:
                await w.write(batch)
            assert w.size == len(expected)
            await w.commit()
            await w.close()
            assert await d.get_content("w/batches") == expected

        self.run(body)

    def test_concurrent_readers(self) -> None:
        data = os.urandom(2 * MiB)

        async def body(d: StorageDriver) -> None:
            await d.put_content("cc/blob", data)
            results = await asyncio.gather(*[read_all(d, "cc/blob") for _ in range(8)])
            assert all(r == data for r in results)

        self.run(body)

    def test_health(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.health()

        self.run(body)


def run_on(driver: StorageDriver, body: Body, clean: bool = True) -> None:
    """Run `body` on a fresh event loop; with `clean`, fail if it left anything behind."""

    async def main() -> None:
        try:
            await body(driver)
            if clean:
                for name in await _safe_list(driver):
                    with contextlib.suppress(PathNotFound):  # an emptied folder, listed
                        await driver.delete(name.rstrip("/"))
                left = await _safe_list(driver)
                assert left == [], left
        finally:
            await driver.close()

    asyncio.run(main())


async def read_all(
    driver: StorageDriver, path: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in driver.reader(path, offset, length)])


async def _safe_list(driver: StorageDriver) -> list[str]:
    try:
        names = await driver.list("")
    except PathNotFound:
        return []
    return [n for n in names if not n.startswith(".ocireg")]
