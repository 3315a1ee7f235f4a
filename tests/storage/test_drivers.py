"""The driver suite and the session-store suite bound to each backend."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest

from ocireg.storage import FileSessions, PathNotFound, SessionStore, StorageDriver
from ocireg.storage.filesystem import FilesystemDriver
from ocireg.storage.s3 import S3Driver, S3Sessions, S3Settings
from ocireg.storage.s3 import state as s3_state
from ocireg.storage.s3 import writer as s3_writer
from ocireg.storage.s3.writer import S3Writer
from tests.storage.driver_suite import DriverSuite
from tests.storage.session_suite import SessionSuite
from tests.support.backends import SeaweedFS


async def _cancelled_as_s3_makes_the_upload(
    d: S3Driver, monkeypatch: pytest.MonkeyPatch, work: Coroutine[Any, Any, None]
) -> None:
    """Run `work`, cancelled once S3 has made its multipart upload and before the answer is
    read; then no multipart upload is left open in the bucket."""
    client = await d.client.c()
    create, running = client.create_multipart_upload, []

    async def cancelled_as_s3_answers(**request: Any) -> Any:
        made = await create(**request)  # S3 has made the upload
        running[0].cancel()
        await asyncio.sleep(0)  # the cancellation arrives before the answer is read
        return made

    monkeypatch.setattr(client, "create_multipart_upload", cancelled_as_s3_answers)
    running.append(asyncio.create_task(work))
    with pytest.raises(asyncio.CancelledError):
        await running[0]
    assert await d.client.multipart_uploads(d.client.key("")) == []


class TestFilesystemDriver(DriverSuite):
    def make_driver(self) -> StorageDriver:
        return FilesystemDriver(self.tmp / "root")

    def test_share_makes_one_file_of_two_equal_ones_and_nothing_else(self) -> None:
        async def body(d: StorageDriver) -> None:
            root = self.tmp / "root"
            for path, data in (("a/x", b"same"), ("b/x", b"same"), ("c/x", b"other!")):
                await d.put_content(path, data)
            reader = open(root / "b" / "x", "rb")  # noqa: SIM115 - a download in progress
            assert await d.share("a/x", "b/x")
            assert (root / "a" / "x").stat().st_ino == (root / "b" / "x").stat().st_ino
            assert reader.read() == b"same"  # the replaced file is still read to its end
            reader.close()
            assert await d.share("a/x", "b/x")  # already one: nothing to do
            assert not await d.share("a/x", "c/x")  # not the same size: left alone
            assert not await d.share("gone/x", "c/x")
            assert await d.get_content("c/x") == b"other!"
            await d.delete("a/x")
            assert await d.get_content("b/x") == b"same"
            assert sorted(os.listdir(root / "b")) == ["x"]  # no temporary left

        self.run(body)


class TestFileSessions(SessionSuite):
    def make_storage(self) -> tuple[StorageDriver, SessionStore]:
        driver = FilesystemDriver(self.tmp / "root")
        return driver, FileSessions(driver)


class OnS3:
    @pytest.fixture(autouse=True)
    def _s3(self, seaweedfs: SeaweedFS) -> None:
        self.settings = S3Settings.from_map(seaweedfs.storage_driver(f"/t-{uuid.uuid4().hex[:12]}"))


class TestS3Driver(OnS3, DriverSuite):
    def make_driver(self) -> StorageDriver:
        return S3Driver(self.settings)

    def test_share_is_not_done_on_s3(self) -> None:
        async def body(d: StorageDriver) -> None:
            await d.put_content("a/x", b"same")
            await d.put_content("b/x", b"same")
            assert not await d.share("a/x", "b/x")
            assert await d.get_content("b/x") == b"same"

        self.run(body)

    def test_a_copy_in_parts_completes_or_leaves_no_upload(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Objects over `multipartcopythresholdsize` (by default CopyObject's 5 GiB) are
        copied part by part into a multipart upload at the destination (here from 1 MiB, 5
        MiB parts, one at a time). If the copy fails midway, the upload is aborted: at a
        blob's key, no session would name it for GC."""
        self.settings = dataclasses.replace(
            self.settings,
            multipartcopythresholdsize=1 << 20,
            multipartcopychunksize=5 << 20,
            multipartcopymaxconcurrency=1,
        )

        async def body(d: StorageDriver) -> None:
            assert isinstance(d, S3Driver)
            data = os.urandom(12 << 20)
            await d.put_content("a/src", data)
            await d.copy("a/src", "b/copy")
            assert await d.get_content("b/copy") == data
            # The source goes between two part copies (a blob deleted while it is copied).
            client = await d.client.c()
            copy_part, calls = client.upload_part_copy, []

            async def deleting_the_source_midway(**request: Any) -> Any:
                calls.append(request["PartNumber"])
                if len(calls) == 2:
                    await d.delete("a/src")
                return await copy_part(**request)

            monkeypatch.setattr(client, "upload_part_copy", deleting_the_source_midway)
            with pytest.raises(PathNotFound):
                await d.copy("a/src", "c/copy")
            assert await d.client.multipart_uploads(d.client.key("")) == []

        self.run(body)

    def test_a_copy_in_parts_cancelled_while_its_upload_is_made_leaves_none(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A copy cancelled (its client gone, the worker stopping) while S3 makes its
        multipart upload: the upload exists once S3 answers, and is aborted then. Nothing
        else would: at a blob's key, no session names it for GC."""
        self.settings = dataclasses.replace(
            self.settings, multipartcopythresholdsize=1 << 20, multipartcopychunksize=5 << 20
        )

        async def body(d: StorageDriver) -> None:
            assert isinstance(d, S3Driver)
            await d.put_content("a/src", os.urandom(6 << 20))
            await _cancelled_as_s3_makes_the_upload(d, monkeypatch, d.copy("a/src", "b/copy"))

        self.run(body)

    def test_parts_are_chunksize_and_the_user_agent_carries_useragent(self) -> None:
        """`chunksize` is the size of the parts a writer sends; `useragent` is appended to
        the User-Agent of every request (seen on the requests as they leave botocore)."""
        self.settings = dataclasses.replace(
            self.settings, chunksize=7 << 20, useragent="platform-team/1.2"
        )

        async def body(d: StorageDriver) -> None:
            assert isinstance(d, S3Driver)
            agents: list[bytes] = []
            client = await d.client.c()
            client.meta.events.register(
                "before-send.s3", lambda request, **_: agents.append(request.headers["User-Agent"])
            )
            data = os.urandom(16 << 20)
            w = await d.writer("w/blob")
            await w.write([data[: 9 << 20], data[9 << 20 :]])
            await w.commit()
            await w.close()
            assert await d.get_content("w/blob") == data
            c = await d.client.c()
            head = await c.head_object(Bucket=d.bucket, Key=d.client.key("w/blob"), PartNumber=1)
            assert head["PartsCount"] == 3 and head["ContentLength"] == 7 << 20
            assert agents and all(
                a.startswith(b"ocireg/") and a.endswith(b" platform-team/1.2") for a in agents
            ), agents

        self.run(body)

    def test_the_canned_acl_goes_with_every_request_that_makes_an_object(self) -> None:
        """`objectacl` is a header S3 keeps no trace of on HEAD: seen on the requests as they
        leave botocore (and accepted by SeaweedFS) for puts, uploads in parts and copies."""
        self.settings = dataclasses.replace(
            self.settings, objectacl="bucket-owner-full-control", multipartcopythresholdsize=0
        )
        made = ("PutObject", "CreateMultipartUpload", "CopyObject")

        async def body(d: StorageDriver) -> None:
            assert isinstance(d, S3Driver)
            acls: dict[str, set[bytes]] = {op: set() for op in made}
            client = await d.client.c()
            for op in made:
                client.meta.events.register(
                    f"before-send.s3.{op}",
                    lambda request, op=op, **_: acls[op].add(request.headers.get("x-amz-acl")),
                )
            await d.put_content("acl/small", b"x")
            w = await d.writer("acl/big")
            await w.write([os.urandom(7 << 20)])
            await w.commit()
            await w.close()
            await d.copy("acl/small", "acl/small-copy")  # in parts: the threshold is 0
            await d.put_content("acl/empty", b"")
            await d.copy("acl/empty", "acl/empty-copy")  # no parts to copy: one CopyObject
            assert acls == {op: {b"bucket-owner-full-control"} for op in made}, acls
            assert await d.get_content("acl/small-copy") == b"x"

        self.run(body)


class TestS3Sessions(OnS3, SessionSuite):
    def make_storage(self) -> tuple[StorageDriver, SessionStore]:
        driver = S3Driver(self.settings)
        return driver, S3Sessions(driver)

    def test_a_direct_upload_cancelled_while_its_upload_is_made_leaves_none(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A blob streamed to its key (`DirectWriter`) whose request is cancelled while S3
        makes the multipart upload at the blob's key: no state names that upload yet, so
        it is aborted as soon as S3 answers (GC would never find it)."""
        path = "d/.uploads/s"

        async def body(d: StorageDriver, s: SessionStore) -> None:
            assert isinstance(d, S3Driver)

            async def push() -> None:
                w = await s.direct(path, "d/blobs/b")
                try:
                    await w.write([os.urandom(self.settings.chunksize + 1)])
                    await w.commit()
                finally:
                    await w.close()

            await _cancelled_as_s3_makes_the_upload(d, monkeypatch, push())

        self.run(body)

    def test_parts_of_one_batch_that_all_fail_fail_the_write_and_are_all_read(self) -> None:
        """A session whose multipart upload is gone (aborted behind its back: a bucket's
        lifecycle rule, say): SeaweedFS refuses each part sent to it. When both parts in
        flight have failed by the time the next is due, the write fails with the first
        failure and the second is read too: no "Task exception was never retrieved" from
        the event loop. The session then ends as any other."""
        part = os.urandom(self.settings.chunksize)
        path = "f/.uploads/s"

        async def body(d: StorageDriver, s: SessionStore) -> None:
            assert isinstance(d, S3Driver)
            unhandled: list[str] = []
            asyncio.get_running_loop().set_exception_handler(
                lambda _loop, context: unhandled.append(context["message"])
            )
            await s.create(path)
            w = await s.open(path)
            await w.write([part])
            await w.commit()  # part 1 sent: its upload id is in the session's state
            await w.close()
            await s3_state.abort(d.client, path)  # the upload goes, the state stays
            w = await s.open(path)
            await w.write([part])  # parts 2 and 3 go out, to an upload that is gone
            await w.write([part])
            assert isinstance(w, S3Writer) and len(w._inflight) == s3_writer.INFLIGHT
            inflight = set(w._inflight)
            await asyncio.wait(inflight, timeout=60)  # both answered; outcomes left unread
            assert all(t.done() for t in inflight)
            del inflight
            with pytest.raises(PathNotFound):  # S3's NoSuchUpload
                await w.write([part])  # part 4 waits for a slot: both failures are seen
            await w.close()
            del w
            gc.collect()  # a task whose exception nobody read says so as it goes
            assert unhandled == []
            await s.abort(path)
            with pytest.raises(PathNotFound):
                await s.size(path)

        self.run(body)
