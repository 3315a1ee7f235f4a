"""The S3 writers: parts of a multipart upload sent as they fill, over the shared `S3Client`.

`S3Writer` is the driver's resumable writer: its multipart upload sits at its own key and its
state in the object there (`state.py`), so any process can continue it (an upload session's
appends). `DirectWriter`, the session store's, streams a blob whose digest is known up front
straight to its final key, visible there only when `commit` completes the upload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

from ocireg.settings.s3writes import MAX_PART, MIN_PART
from ocireg.storage.base import PathNotFound
from ocireg.storage.s3 import state as states
from ocireg.storage.s3.client import S3Client
from ocireg.storage.s3.partbody import PartBuffer
from ocireg.storage.s3.register import Register
from ocireg.storage.s3.state import UploadState

# Parts in flight per upload while the next one fills: memory per upload stays below
# INFLIGHT + 1 parts plus a received batch, whatever the blob's size.
INFLIGHT = 2
# A new part buffer starts this small and doubles, up to the part's size, as bytes arrive:
# a blob smaller than a part (most of them) holds about its own size, not `chunksize` (up
# to 5 GiB), which `bytearray` would zero, and so make resident, at once.
FIRST_BUFFER = 256 << 10


class S3Writer:
    """Appends to an upload session: full parts go up as they fill, up to INFLIGHT of them at
    once; `commit` stores the state (and the short tail) so that any process can continue."""

    def __init__(
        self, client: S3Client, path: str, state: UploadState, seal_on_commit: bool = False
    ) -> None:
        self._client = client
        self._path = path
        self._state = state
        # The part being filled: received pieces are copied into a buffer of the part's size
        # (one copy per byte), and a part's buffer, once sent, takes the next part. So an
        # upload allocates INFLIGHT + 1 buffers whatever its size: a new block of several MiB
        # per part (the pieces joined) left the heap fragmented, and the worker's peak RSS
        # grew with each push (docs/performance.md, "S3 worker memory").
        self._buffer: PartBuffer | None = None
        self._pending = 0  # bytes in `_buffer`
        self._spare: list[PartBuffer] = []  # buffers of sent parts
        self._sent = sum(p[2] for p in state.parts)
        self._next = len(state.parts) + 1
        self._inflight: set[asyncio.Task[None]] = set()
        self._seal_on_commit = seal_on_commit
        if state.tail:  # shorter than a part (MIN_PART): it fits
            self._fill(memoryview(state.tail))

    @property
    def size(self) -> int:
        return self._sent + self._pending

    def _part_size(self) -> int:
        """A part is sent once this much has arrived: `chunksize`, grown after every 1,000
        parts (S3 allows 10,000) so that blobs of any size fit."""
        grown = self._client.settings.chunksize * (1 + (self._next - 1) // 1000)
        return min(grown, MAX_PART)

    async def write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            rest = memoryview(piece)
            while rest:
                rest = self._fill(rest)
                if self._pending >= self._part_size():
                    await self._send_pending()

    def _fill(self, data: memoryview) -> memoryview:
        """Copy what fits of `data` into the part being filled; the rest of `data`."""
        size = self._part_size()
        buffer = self._buffer
        if buffer is None:
            spare = self._spare.pop() if self._spare else None
            # Parts grow after every 1,000 (`_part_size`): a smaller spare is dropped.
            if spare is None or len(spare) != size:
                spare = PartBuffer(min(size, FIRST_BUFFER))
            buffer = self._buffer = spare
        n = min(len(data), size - self._pending)
        if self._pending + n > len(buffer):  # a new buffer, grown (doubling) to fit
            grown = min(size, max(self._pending + n, 2 * len(buffer)))
            buffer.extend(bytes(grown - len(buffer)))
        buffer[self._pending : self._pending + n] = data[:n]
        self._pending += n
        return data[n:]

    def _take(self) -> bytes | bytearray:
        """What has arrived and was not sent yet, as one part: a full buffer as it is, a
        shorter part (the last) as a copy, its buffer kept for another part."""
        buffer, n = self._buffer, self._pending
        self._buffer, self._pending = None, 0
        if buffer is None or n == len(buffer):
            return buffer or b""
        self._spare.append(buffer)
        return bytes(memoryview(buffer)[:n])

    async def _begin(self) -> str:
        """Start the multipart upload and record its id in the state at once (parts still
        empty, the old tail kept: the state still describes what was committed), so that
        an abandoned session can be aborted."""
        upload_id = await self._client.start_multipart(self._path)
        self._state.upload_id = upload_id
        await states.save(self._client, self._path, self._state)
        return upload_id

    async def _send_pending(self) -> None:
        """Send what has arrived as the next part, once fewer than INFLIGHT are on the way:
        the part is joined only then, so memory holds at most INFLIGHT parts being sent,
        plus the pieces of the next one while they are joined."""
        upload_id = self._state.upload_id or await self._begin()
        while len(self._inflight) >= INFLIGHT:
            done, _ = await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            self._inflight -= done
            # A failed part fails the write; every outcome is read, so that a second
            # failure in the same batch is not reported as "never retrieved".
            failures = [e for t in done if (e := t.exception()) is not None]
            if failures:
                raise failures[0]
        data = self._take()
        number, self._next = self._next, self._next + 1
        self._sent += len(data)
        self._inflight.add(asyncio.create_task(self._send(upload_id, number, data)))

    async def _send(self, upload_id: str, number: int, data: bytes | bytearray) -> None:
        etag = await self._client.send_part(self._key_path(), upload_id, number, data)
        self._state.parts.append((number, etag, len(data)))
        # Sent and answered: nothing holds the buffer any more (after a failure the HTTP
        # client might, so a failed part's buffer is not used again).
        if isinstance(data, PartBuffer):
            self._spare.append(data)

    def _key_path(self) -> str:
        """The path whose key holds the multipart upload."""
        return self._path

    async def _drain(self) -> None:
        tasks, self._inflight = self._inflight, set()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        self._state.parts.sort()  # sent concurrently: they may have finished out of order

    async def commit(self) -> None:
        if self._pending >= MIN_PART:
            await self._send_pending()
        await self._drain()
        # Still counted in `size`, and still in the buffer for a later write.
        buffer = self._buffer
        self._state.tail = bytes(memoryview(buffer)[: self._pending]) if buffer else b""
        await states.save(self._client, self._path, self._state)
        if self._seal_on_commit:
            await states.seal(self._client, self._path, self._state)

    async def rollback(self) -> None:
        # The stored state is what `commit` saved last: without a commit it still describes
        # the session as it was (a part sent meanwhile is replaced by the next writer's).
        await self.close()

    async def close(self) -> None:
        tasks, self._inflight = self._inflight, set()
        for task in tasks:
            task.cancel()
        # A request that failed midway: its parts are not in the stored state anyway.
        await asyncio.gather(*tasks, return_exceptions=True)


class DirectWriter(S3Writer):
    """A blob streamed straight to its final key `dst`. Nothing is visible there before
    `commit`: a small blob is held here and sent with one PutObject at `commit`, a larger one
    goes into a multipart upload started at `dst` that only `commit` completes. The registry
    verifies the digest between the last `write` and `commit`; `close` without `commit`
    aborts the multipart upload, so a body that lied about its digest leaves nothing at `dst`.

    A multipart upload at a blob key is recorded in the session's state (`key`) and the
    session's register entry, so garbage collection aborts it if this process dies. `commit`
    ends the session at `path`; without it, a session the client had opened stays open
    (empty) and nothing else is left. If `dst` exists already, its object is kept (a blob
    is only written verified, so it holds the same bytes): the body is still received for
    the registry to verify."""

    def __init__(self, register: Register, path: str, dst: str, sha256: str | None) -> None:
        super().__init__(register.client, path, UploadState())
        self._register = register
        self._dst = dst
        self._sha256 = sha256
        self._exists = False  # dst was there before: bytes are received and dropped
        self._committed = False
        self._session_was_open = False  # known once a multipart upload is started

    def _key_path(self) -> str:
        return self._dst

    async def write(self, pieces: list[bytes]) -> None:
        if self._exists:
            self._sent += sum(map(len, pieces))
            return
        await super().write(pieces)

    async def _send_pending(self) -> None:
        if self._state.upload_id is None and await self._client.has_bytes(self._dst):
            self._exists = True
            self._sent += self._pending
            self._buffer, self._pending = None, 0
            return
        await super()._send_pending()

    async def _begin(self) -> str:
        try:
            left = await states.load(self._client, self._path)
            self._session_was_open = True
        except PathNotFound:
            left, self._session_was_open = None, False
        if left is not None and left.upload_id:
            # An earlier PUT of this session whose process died mid-way: its upload (at the
            # blob's key) is named by this state alone, which is about to be replaced.
            await states.abort(self._client, self._path, left)
        # Registered first: GC finds the session (and through its state the upload at dst)
        # from the register; a crash between the next two calls leaves an upload nobody
        # names, a window of one request.
        await self._register.add(self._path)
        upload_id = await self._client.start_multipart(self._dst)
        self._state.upload_id = upload_id
        self._state.key = self._dst
        await states.save(self._client, self._path, self._state)
        return upload_id

    async def commit(self) -> None:
        if not self._exists:
            if self._state.upload_id is None:
                await self._put_whole()
            else:
                if self._pending:  # the last part may be small
                    await self._send_pending()
                await self._drain()
                await self._complete()
        self._committed = True
        await self._end_session()

    async def _complete(self) -> None:
        assert self._state.upload_id is not None
        upload_id, parts = self._state.upload_id, self._state.parts
        if await self._client.complete(self._dst, upload_id, parts, only_new=True):
            self._state.upload_id = None
        elif await self._client.has_bytes(self._dst):
            await self._abort()  # another push of the same blob completed first: keep it
        else:  # an empty object there (a zot dedupe stub): the bytes replace it
            await self._client.complete(self._dst, upload_id, parts, only_new=False)
            self._state.upload_id = None

    async def _put_whole(self) -> None:
        extra: dict[str, Any] = {}
        if self._sha256 is not None:  # S3 checks it too (SeaweedFS does: BadDigest)
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(self._sha256)).decode()
        data = self._take()
        if not await self._client.put(
            self._dst, data, True, **extra
        ) and not await self._client.has_bytes(self._dst):  # a zot dedupe stub: replace it
            await self._client.put(self._dst, data, False, **extra)

    async def rollback(self) -> None:
        await self.close()

    async def close(self) -> None:
        await super().close()
        if self._committed:
            return
        self._committed = True  # close twice: once is enough
        if self._state.upload_id is None:
            return  # nothing sent: the session (if any) is as it was
        # Nothing is visible at dst either way; an upload left open (S3 unreachable) is
        # registered, and garbage collection aborts it.
        with contextlib.suppress(Exception):
            await self._abort()
            if self._session_was_open:  # the client may go on with it, from 0
                await states.save(self._client, self._path, UploadState())
            else:
                await self._register.end(self._path)

    async def _abort(self) -> None:
        upload_id, self._state.upload_id = self._state.upload_id, None
        if upload_id is not None:
            await self._client.abort_multipart(self._dst, upload_id)

    async def _end_session(self) -> None:
        with contextlib.suppress(Exception):  # a leftover is garbage collection's to remove
            await self._register.end(self._path)
