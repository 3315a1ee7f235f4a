"""The S3 driver's writer: appends to an upload session in multipart parts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocireg.storage.s3.sessions import UploadSessions, _UploadState

MIN_PART = 5 << 20  # S3's minimum for every part but the last
PART = 8 << 20  # parts are sent at this size; memory per upload: 2 * PART + a received batch


class S3Writer:
    """Appends to an upload session: full parts go up as they fill, one part in flight while
    the next one fills; `commit` stores the state (and the short tail) so that any process
    can continue."""

    def __init__(
        self, driver: UploadSessions, path: str, state: _UploadState, seal_on_commit: bool = False
    ) -> None:
        self._driver = driver
        self._path = path
        self._state = state
        self._buffer = bytearray(state.tail)
        self._sent = sum(p[2] for p in state.parts)
        self._next = len(state.parts) + 1
        self._inflight: asyncio.Task[None] | None = None
        self._seal_on_commit = seal_on_commit

    @property
    def size(self) -> int:
        return self._sent + len(self._buffer)

    def _part_size(self) -> int:
        # S3 allows 10,000 parts: grow the part size so that blobs of any size fit.
        return PART * (1 + (self._next - 1) // 1000)

    async def write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._buffer += piece
        while len(self._buffer) >= self._part_size():
            n = self._part_size()
            await self._flush(bytes(self._buffer[:n]))
            del self._buffer[:n]

    async def _flush(self, data: bytes) -> None:
        if self._state.upload_id is None:
            self._state.upload_id = await self._driver._start_multipart(self._path)
            # Record the id at once (parts still empty, the old tail kept: the state still
            # describes what was committed), so that an abandoned session can be aborted.
            await self._driver._save_state(self._path, self._state)
        number, self._next = self._next, self._next + 1
        self._sent += len(data)
        await self._drain()  # at most one part in flight: memory stays bounded
        self._inflight = asyncio.create_task(self._send(self._state.upload_id, number, data))

    async def _send(self, upload_id: str, number: int, data: bytes) -> None:
        etag = await self._driver._send_part(self._path, upload_id, number, data)
        self._state.parts.append((number, etag, len(data)))

    async def _drain(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def commit(self) -> None:
        if len(self._buffer) >= MIN_PART:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()
        await self._drain()
        self._state.tail = bytes(self._buffer)
        await self._driver._save_state(self._path, self._state)
        if self._seal_on_commit:
            await self._driver._seal(self._path, self._state)

    async def rollback(self) -> None:
        # The stored state is what `commit` saved last: without a commit it still describes
        # the session as it was (a part sent meanwhile is replaced by the next writer's).
        await self.close()

    async def close(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            # A request that failed midway: the part is not in the stored state anyway.
            await asyncio.gather(task, return_exceptions=True)
