"""One behaviour suite for every upload-session store (`ocireg.storage.sessions`), bound like
the driver suite: a store over a fresh, empty driver per test, and the driver suite's
teardown, which fails when a test leaves anything behind.

    class TestFileSessions(SessionSuite):
        def make_storage(self) -> tuple[StorageDriver, SessionStore]:
            driver = FilesystemDriver(self.tmp / "root")
            return driver, FileSessions(driver)
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ocireg.storage import PathNotFound, SessionStore, StorageDriver
from tests.storage.driver_suite import MiB, read_all, run_on

Body = Callable[[StorageDriver, SessionStore], Awaitable[None]]


class SessionSuite:
    tmp: Path

    def make_storage(self) -> tuple[StorageDriver, SessionStore]:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _workdir(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def run(self, body: Body) -> None:
        driver, sessions = self.make_storage()
        run_on(driver, lambda d: body(d, sessions))

    def test_unknown_session_is_path_not_found(self) -> None:
        async def body(d: StorageDriver, s: SessionStore) -> None:
            for call in (s.size, s.open, s.abort):
                with pytest.raises(PathNotFound):
                    await call("nope/.uploads/x")
            assert await s.list("nope/.uploads") == []
            assert not await s.expire("nope/.uploads/x", time.time())

        self.run(body)

    def _chunks(self) -> list[bytes]:
        # Small, tiny, big (several parts on S3), small again: every buffering case.
        return [os.urandom(n) for n in (100, 1, 9 * MiB + 7, 3 * MiB, 17)]

    def test_session_across_writers(self) -> None:
        chunks = self._chunks()

        async def body(d: StorageDriver, s: SessionStore) -> None:
            await s.create("u/.uploads/s1")
            assert await s.size("u/.uploads/s1") == 0
            total = 0
            for chunk in chunks:  # a new writer per chunk, as a new request would open
                w = await s.open("u/.uploads/s1")
                assert w.size == total
                await w.write([chunk])
                await w.commit()
                assert w.size == total + len(chunk)  # what the client is told it holds
                await w.close()
                total += len(chunk)
                assert await s.size("u/.uploads/s1") == total
            digest = hashlib.sha256()
            async for piece in s.read("u/.uploads/s1"):
                digest.update(piece)
            assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
            await s.finish("u/.uploads/s1", "u/blobs/sha256/x")
            assert await read_all(d, "u/blobs/sha256/x") == b"".join(chunks)
            with pytest.raises(PathNotFound):
                await s.size("u/.uploads/s1")

        self.run(body)

    def test_small_upload_finishes_without_reading(self) -> None:
        async def body(d: StorageDriver, s: SessionStore) -> None:
            await s.create("v/.uploads/s")
            w = await s.open("v/.uploads/s")
            await w.write([b"tiny"])
            await w.commit()
            await w.close()
            await s.finish("v/.uploads/s", "v/blobs/t")
            assert await d.get_content("v/blobs/t") == b"tiny"

        self.run(body)

    def test_the_final_size_then_finish_or_abort(self) -> None:
        # The final PUT asks `size(ending=True)`, then the session ends one way or another;
        # a store may keep what that read for the ending (S3: the state with its bytes).
        small, large = os.urandom(1000), os.urandom(6 * MiB + 5)  # large: a part on S3

        async def written(s: SessionStore, path: str, data: bytes) -> None:
            await s.create(path)
            w = await s.open(path)
            await w.write([data])
            await w.commit()
            await w.close()

        async def body(d: StorageDriver, s: SessionStore) -> None:
            for n, data in enumerate((small, large)):
                # Finished as read.
                await written(s, f"f/.uploads/a{n}", data)
                assert await s.size(f"f/.uploads/a{n}", ending=True) == len(data)
                await s.finish(f"f/.uploads/a{n}", f"f/blobs/a{n}")
                assert await read_all(d, f"f/blobs/a{n}") == data
                # Read back in between (a process without the running hash verifies the
                # bytes so), which may seal them on S3: finish then takes them as they are.
                await written(s, f"f/.uploads/b{n}", data)
                assert await s.size(f"f/.uploads/b{n}", ending=True) == len(data)
                assert b"".join([p async for p in s.read(f"f/.uploads/b{n}")]) == data
                await s.finish(f"f/.uploads/b{n}", f"f/blobs/b{n}")
                assert await read_all(d, f"f/blobs/b{n}") == data
                # More bytes after the read (a final PUT with a body): they count.
                await written(s, f"f/.uploads/c{n}", data)
                assert await s.size(f"f/.uploads/c{n}", ending=True) == len(data)
                w = await s.open(f"f/.uploads/c{n}")
                await w.write([b"tail"])
                await w.commit()
                await w.close()
                await s.finish(f"f/.uploads/c{n}", f"f/blobs/c{n}")
                assert await read_all(d, f"f/blobs/c{n}") == data + b"tail"
                # Aborted (a digest that did not match): nothing is left.
                await written(s, f"f/.uploads/d{n}", data)
                assert await s.size(f"f/.uploads/d{n}", ending=True) == len(data)
                await s.abort(f"f/.uploads/d{n}")
                with pytest.raises(PathNotFound):
                    await s.size(f"f/.uploads/d{n}")
            for name in ("a", "b", "c"):
                for n in (0, 1):
                    await d.delete(f"f/blobs/{name}{n}")

        self.run(body)

    def test_reopened_session_size_is_consistent(self) -> None:
        async def body(d: StorageDriver, s: SessionStore) -> None:
            await s.create("x/.uploads/s")
            w = await s.open("x/.uploads/s")
            await w.write([b"a" * 10])
            await w.commit()
            await w.close()
            w = await s.open("x/.uploads/s")
            await w.write([b"b" * 10])  # never committed
            await w.close()
            w = await s.open("x/.uploads/s")
            # Disk keeps what was written, S3 what was committed: either way size and
            # content agree, which is what a client resuming from the offset needs.
            assert w.size == await s.size("x/.uploads/s")
            assert w.size in (10, 20)
            await w.close()
            await s.abort("x/.uploads/s")

        self.run(body)

    def test_rollback_leaves_the_session_as_it_was(self) -> None:
        first = os.urandom(100)

        async def body(d: StorageDriver, s: SessionStore) -> None:
            await s.create("r/.uploads/s")
            w = await s.open("r/.uploads/s")
            await w.write([first])
            await w.commit()
            await w.close()
            w = await s.open("r/.uploads/s")
            # Past a part on S3 and through the write thread on disk: all of it taken back.
            await w.write([os.urandom(9 * MiB), b"tail"])
            await w.rollback()
            await w.close()
            assert await s.size("r/.uploads/s") == 100
            w = await s.open("r/.uploads/s")
            assert w.size == 100
            await w.write([b"next"])
            await w.commit()
            await w.close()
            await s.finish("r/.uploads/s", "r/blobs/b")
            assert await read_all(d, "r/blobs/b") == first + b"next"

        self.run(body)

    def test_direct_is_visible_only_after_commit(self) -> None:
        big = os.urandom(17 * MiB + 3)  # several parts on S3: a multipart upload at the key

        async def body(d: StorageDriver, s: SessionStore) -> None:
            for name, data in (("small", b"tiny"), ("big", big)):
                dst = f"w/blobs/{name}"
                w = await s.direct(f"w/.uploads/{name}", dst)
                await w.write([data[: len(data) // 2]])
                await w.write([data[len(data) // 2 :]])
                assert w.size == len(data)
                with pytest.raises(PathNotFound):
                    await d.stat(dst)
                await w.commit()
                await w.close()
                assert await read_all(d, dst) == data
                assert await s.list("w/.uploads") == []

        self.run(body)

    def test_direct_closed_without_commit_leaves_nothing_at_dst(self) -> None:
        async def body(d: StorageDriver, s: SessionStore) -> None:
            for data in (b"tiny", os.urandom(17 * MiB)):
                w = await s.direct("n/.uploads/none", "n/blobs/b")  # no session open
                await w.write([data])
                await w.close()
                await s.create("n/.uploads/s")  # a session opened by a client first
                w = await s.direct("n/.uploads/s", "n/blobs/b")
                await w.write([data])
                await w.rollback()
                await w.close()
                with pytest.raises(PathNotFound):
                    await d.stat("n/blobs/b")
                assert await s.size("n/.uploads/s") == 0  # still open: start again
                w = await s.direct("n/.uploads/s", "n/blobs/b")
                await w.write([data])
                await w.close()  # without rollback: disk keeps what was written, S3 not
                assert await s.size("n/.uploads/s") in (0, len(data))
                await s.abort("n/.uploads/s")
                assert await s.list("n/.uploads") == []
                with pytest.raises(PathNotFound):
                    await d.stat("n/blobs/b")

        self.run(body)

    def test_direct_to_an_existing_object_keeps_its_bytes(self) -> None:
        data = os.urandom(9 * MiB)

        async def body(d: StorageDriver, s: SessionStore) -> None:
            await d.put_content("e/blobs/b", data)
            w = await s.direct("e/.uploads/s", "e/blobs/b")
            await w.write([data])
            await w.commit()
            await w.close()
            assert await read_all(d, "e/blobs/b") == data
            assert await s.list("e/.uploads") == []

        self.run(body)

    def test_abort(self) -> None:
        async def body(d: StorageDriver, s: SessionStore) -> None:
            await s.create("y/.uploads/s")
            w = await s.open("y/.uploads/s")
            await w.write([os.urandom(9 * MiB)])
            await w.commit()
            await w.close()
            await s.abort("y/.uploads/s")
            with pytest.raises(PathNotFound):
                await s.size("y/.uploads/s")
            with pytest.raises(PathNotFound):
                await s.abort("y/.uploads/s")

        self.run(body)

    def test_list_and_expire(self) -> None:
        async def body(d: StorageDriver, s: SessionStore) -> None:
            assert await s.list("z/.uploads") == []
            await s.create("z/.uploads/empty")
            await s.create("z/.uploads/big")
            w = await s.open("z/.uploads/big")
            await w.write([os.urandom(9 * MiB)])  # a part went up: S3 holds a multipart upload
            await w.commit()
            await w.close()
            await s.create("z/.uploads/done")
            await s.finish("z/.uploads/done", "z/blob")
            listed = await s.list("z/.uploads")
            assert [i.path for i in listed] == ["z/.uploads/big", "z/.uploads/empty"]
            now = time.time()
            assert all(now - 60 < i.mtime <= now + 1 for i in listed)
            # Written after `before`: kept.
            assert not await s.expire("z/.uploads/big", listed[0].mtime - 1)
            assert await s.size("z/.uploads/big") == 9 * MiB
            for info in listed:
                assert await s.expire(info.path, now + 1)
                with pytest.raises(PathNotFound):
                    await s.size(info.path)
            assert not await s.expire("z/.uploads/big", now + 1)
            left = await s.list("z/.uploads")
            assert left == [], left
            await d.delete("z/blob")

        self.run(body)
