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
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ocireg.storage import InvalidPath, PathNotFound, StorageDriver

Body = Callable[[StorageDriver], Awaitable[None]]
MiB = 1 << 20
# Pieces per batch: tiny, one small, many received pieces (past the writev limit), big.
_BATCH_SIZES = [(10,), (300_000,), (417_792,) * 3, (1_000,) * 600, (5 * MiB, 1), (7,)] * 3


async def _read_all(
    driver: StorageDriver, path: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in driver.reader(path, offset, length)])


class DriverSuite:
    tmp: Path

    def make_driver(self) -> StorageDriver:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _workdir(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def run(self, body: Body, clean: bool = True) -> None:
        async def main() -> None:
            driver = self.make_driver()
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
            for call in (d.get_content, d.stat, d.list, d.delete, d.upload_size):
                with pytest.raises(PathNotFound):
                    await call("nope/x")
            with pytest.raises(PathNotFound):
                await _read_all(d, "nope/x")

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

    # --- streams ---------------------------------------------------------------------------

    def test_reader_ranges(self) -> None:
        data = os.urandom(3 * MiB + 123)

        async def body(d: StorageDriver) -> None:
            await d.put_content("s/blob", data)
            assert await _read_all(d, "s/blob") == data
            assert await _read_all(d, "s/blob", 10, 100) == data[10:110]
            assert await _read_all(d, "s/blob", 2 * MiB) == data[2 * MiB :]
            assert await _read_all(d, "s/blob", 5, 0) == b""

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
            results = await asyncio.gather(*[_read_all(d, "cc/blob") for _ in range(8)])
            assert all(r == data for r in results)

        self.run(body)

    # --- upload sessions -------------------------------------------------------------------

    def _chunks(self) -> list[bytes]:
        # Small, tiny, big (several parts on S3), small again: every buffering case.
        return [os.urandom(n) for n in (100, 1, 9 * MiB + 7, 3 * MiB, 17)]

    def test_upload_session_across_writers(self) -> None:
        chunks = self._chunks()

        async def body(d: StorageDriver) -> None:
            await d.upload_create("u/.uploads/s1")
            assert await d.upload_size("u/.uploads/s1") == 0
            total = 0
            for chunk in chunks:  # a new writer per chunk, as a new request would open
                w = await d.upload_open("u/.uploads/s1")
                assert w.size == total
                await w.write([chunk])
                await w.commit()
                assert w.size == total + len(chunk)  # what the client is told it holds
                await w.close()
                total += len(chunk)
                assert await d.upload_size("u/.uploads/s1") == total
            digest = hashlib.sha256()
            async for piece in d.upload_reader("u/.uploads/s1"):
                digest.update(piece)
            assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
            await d.upload_finish("u/.uploads/s1", "u/blobs/sha256/x")
            assert await _read_all(d, "u/blobs/sha256/x") == b"".join(chunks)
            with pytest.raises(PathNotFound):
                await d.upload_size("u/.uploads/s1")

        self.run(body)

    def test_small_upload_finishes_without_reading(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.upload_create("v/.uploads/s")
            w = await d.upload_open("v/.uploads/s")
            await w.write([b"tiny"])
            await w.commit()
            await w.close()
            await d.upload_finish("v/.uploads/s", "v/blobs/t")
            assert await d.get_content("v/blobs/t") == b"tiny"

        self.run(body)

    def test_reopened_session_size_is_consistent(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.upload_create("x/.uploads/s")
            w = await d.upload_open("x/.uploads/s")
            await w.write([b"a" * 10])
            await w.commit()
            await w.close()
            w = await d.upload_open("x/.uploads/s")
            await w.write([b"b" * 10])  # never committed
            await w.close()
            w = await d.upload_open("x/.uploads/s")
            # Disk keeps what was written, S3 what was committed: either way size and
            # content agree, which is what a client resuming from the offset needs.
            assert w.size == await d.upload_size("x/.uploads/s")
            assert w.size in (10, 20)
            await w.close()
            await d.upload_abort("x/.uploads/s")

        self.run(body)

    def test_rollback_leaves_the_session_as_it_was(self) -> None:
        first = os.urandom(100)

        async def body(d: StorageDriver) -> None:
            await d.upload_create("r/.uploads/s")
            w = await d.upload_open("r/.uploads/s")
            await w.write([first])
            await w.commit()
            await w.close()
            w = await d.upload_open("r/.uploads/s")
            # Past a part on S3 and through the write thread on disk: all of it taken back.
            await w.write([os.urandom(9 * MiB), b"tail"])
            await w.rollback()
            await w.close()
            assert await d.upload_size("r/.uploads/s") == 100
            w = await d.upload_open("r/.uploads/s")
            assert w.size == 100
            await w.write([b"next"])
            await w.commit()
            await w.close()
            await d.upload_finish("r/.uploads/s", "r/blobs/b")
            assert await _read_all(d, "r/blobs/b") == first + b"next"

        self.run(body)

    def test_upload_direct_is_visible_only_after_commit(self) -> None:
        big = os.urandom(17 * MiB + 3)  # several parts on S3: a multipart upload at the key

        async def body(d: StorageDriver) -> None:
            for name, data in (("small", b"tiny"), ("big", big)):
                dst = f"w/blobs/{name}"
                w = await d.upload_direct(f"w/.uploads/{name}", dst)
                await w.write([data[: len(data) // 2]])
                await w.write([data[len(data) // 2 :]])
                assert w.size == len(data)
                with pytest.raises(PathNotFound):
                    await d.stat(dst)
                await w.commit()
                await w.close()
                assert await _read_all(d, dst) == data
                assert await d.upload_list("w/.uploads") == []

        self.run(body)

    def test_upload_direct_closed_without_commit_leaves_nothing_at_dst(self) -> None:
        async def body(d: StorageDriver) -> None:
            for data in (b"tiny", os.urandom(17 * MiB)):
                w = await d.upload_direct("n/.uploads/none", "n/blobs/b")  # no session open
                await w.write([data])
                await w.close()
                await d.upload_create("n/.uploads/s")  # a session opened by a client first
                w = await d.upload_direct("n/.uploads/s", "n/blobs/b")
                await w.write([data])
                await w.rollback()
                await w.close()
                with pytest.raises(PathNotFound):
                    await d.stat("n/blobs/b")
                assert await d.upload_size("n/.uploads/s") == 0  # still open: start again
                w = await d.upload_direct("n/.uploads/s", "n/blobs/b")
                await w.write([data])
                await w.close()  # without rollback: disk keeps what was written, S3 not
                assert await d.upload_size("n/.uploads/s") in (0, len(data))
                await d.upload_abort("n/.uploads/s")
                assert await d.upload_list("n/.uploads") == []
                with pytest.raises(PathNotFound):
                    await d.stat("n/blobs/b")

        self.run(body)

    def test_upload_direct_to_an_existing_object_keeps_its_bytes(self) -> None:
        data = os.urandom(9 * MiB)

        async def body(d: StorageDriver) -> None:
            await d.put_content("e/blobs/b", data)
            w = await d.upload_direct("e/.uploads/s", "e/blobs/b")
            await w.write([data])
            await w.commit()
            await w.close()
            assert await _read_all(d, "e/blobs/b") == data
            assert await d.upload_list("e/.uploads") == []

        self.run(body)

    def test_upload_abort(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.upload_create("y/.uploads/s")
            w = await d.upload_open("y/.uploads/s")
            await w.write([os.urandom(9 * MiB)])
            await w.commit()
            await w.close()
            await d.upload_abort("y/.uploads/s")
            with pytest.raises(PathNotFound):
                await d.upload_size("y/.uploads/s")
            with pytest.raises(PathNotFound):
                await d.upload_abort("y/.uploads/s")

        self.run(body)

    def test_upload_list_and_expire(self) -> None:
        async def body(d: StorageDriver) -> None:
            assert await d.upload_list("z/.uploads") == []
            await d.upload_create("z/.uploads/empty")
            await d.upload_create("z/.uploads/big")
            w = await d.upload_open("z/.uploads/big")
            await w.write([os.urandom(9 * MiB)])  # a part went up: S3 holds a multipart upload
            await w.commit()
            await w.close()
            await d.upload_create("z/.uploads/done")
            await d.upload_finish("z/.uploads/done", "z/blob")
            listed = await d.upload_list("z/.uploads")
            assert [i.path for i in listed] == ["z/.uploads/big", "z/.uploads/empty"]
            now = time.time()
            assert all(now - 60 < i.mtime <= now + 1 for i in listed)
            # Written after `before`: kept.
            assert not await d.upload_expire("z/.uploads/big", listed[0].mtime - 1)
            assert await d.upload_size("z/.uploads/big") == 9 * MiB
            for info in listed:
                assert await d.upload_expire(info.path, now + 1)
                with pytest.raises(PathNotFound):
                    await d.upload_size(info.path)
            assert not await d.upload_expire("z/.uploads/big", now + 1)
            left = await d.upload_list("z/.uploads")
            assert left == [], left
            await d.delete("z/blob")

        self.run(body)

    def test_health(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.health()

        self.run(body)


async def _safe_list(driver: StorageDriver) -> list[str]:
    try:
        names = await driver.list("")
    except PathNotFound:
        return []
    return [n for n in names if not n.startswith(".ocireg")]
