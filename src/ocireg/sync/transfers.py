"""Blob copies in flight in this worker process: each blob is fetched once, and a client
that asks for a blob while it is being copied reads it as it arrives (the first pull is
streamed rather than made to wait for the whole blob to land).

A transfer writes into an upload session of the store, so its bytes stay invisible until the
session's digest check passes. On the filesystem a reader follows the transfer: the pieces
received lately are kept in memory (`RING` bytes at most) and handed to the reader as they
arrive, without a read back from the disk; a reader further behind reads the session's file
(the descriptor stays valid when the finished session is renamed into place). Either way the
last byte is held back until the check has passed: a client never receives a complete blob
whose digest was not verified. On S3 a session's parts cannot be read back, so readers wait
for the end.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass, field

from ocireg.digest import Digest

PIECE = 4 << 20  # at most this much per send and per read of the file
POLL = 0.02  # seconds between looks at a growing file when no byte is new
# The latest received bytes a transfer keeps for its readers: a reader within this distance
# of the download is fed from memory; one further behind (a slow client) reads the file,
# which by then holds those bytes (upstream.BLOB_PIECE is small enough for that).
RING = 16 << 20
# A follower sends at least this much at a time (or what is left): pieces arrive as the
# network delivers them, sometimes 64 KiB, and a send per piece costs more than a join.
BATCH = 512 << 10


@dataclass
class Transfer:
    digest: Digest
    path: str | None = None  # the upload session's file while it is written (filesystem)
    size: int | None = None  # from the upstream's Content-Length
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # path and size are known
    task: asyncio.Task[None] | None = None
    received: int = 0  # bytes that arrived from upstream so far
    # (offset, piece) of the latest pieces, at most RING bytes (one piece at least)
    recent: deque[tuple[int, bytes]] = field(default_factory=deque)
    recent_bytes: int = 0
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # set when a piece arrives
    # Copied by another worker process: the blob's path once stored. The bytes followed in
    # `path` count only if that is the file stored there (checked before the last byte).
    final: str | None = None

    def started(self, path: str | None, size: int | None) -> None:
        self.path, self.size, self.final = path, size, None
        self.ready.set()

    def started_elsewhere(self, path: str | None, size: int, final: str) -> None:
        """Another worker process copies the blob into `path` (its session's file)."""
        self.started(path, size)
        self.final = final

    def arrived(self, piece: bytes) -> None:
        """A piece from upstream, in order (before it is hashed and written)."""
        if not self.followable:  # nobody can follow it (S3, no size): nothing to keep
            self.received += len(piece)
            return
        self.recent.append((self.received, piece))
        self.received += len(piece)
        self.recent_bytes += len(piece)
        while self.recent_bytes > RING and len(self.recent) > 1:
            self.recent_bytes -= len(self.recent.popleft()[1])
        self.moved.set()

    def recent_at(self, offset: int, limit: int) -> bytes | None:
        """Up to `limit` bytes (at most PIECE) at `offset` from the pieces kept; None when
        they are older (or not received yet). Pieces are joined only up to BATCH: a piece
        that large goes as it is (the upstream's pieces are that large unless it is slow),
        and a join copies every byte into new memory, which costs more than a send here."""
        if not self.recent or offset < self.recent[0][0] or offset >= self.received:
            return None
        limit = min(limit, PIECE)
        parts: list[bytes] = []
        taken = 0
        for start, piece in self.recent:
            end = start + len(piece)
            if end <= offset:
                continue
            skip = max(offset - start, 0)
            if skip == 0 and taken + len(piece) <= limit:
                parts.append(piece)  # a whole piece: no copy
            else:
                parts.append(piece[skip : skip + limit - taken])
            taken += len(parts[-1])
            if taken >= min(limit, BATCH):
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def followable(self) -> bool:
        return self.path is not None and self.size is not None and self.size > 0


Copy = Callable[[Transfer], Coroutine[None, None, None]]


class Transfers:
    def __init__(self) -> None:
        self._active: dict[tuple[str, str], Transfer] = {}

    def start(self, local: str, digest: Digest, copy: Copy) -> Transfer:
        """The transfer of `local@digest` in this process, started with `copy` if none is."""
        key = (local, str(digest))
        transfer = self._active.get(key)
        if transfer is None:
            transfer = Transfer(digest)
            transfer.task = asyncio.create_task(self._run(transfer, copy))
            self._active[key] = transfer
            transfer.task.add_done_callback(lambda _: self._active.pop(key, None))
        return transfer

    @staticmethod
    async def _run(transfer: Transfer, copy: Copy) -> None:
        try:
            await copy(transfer)
        finally:
            transfer.ready.set()  # readers waiting for a start see the end instead

    def cancel_all(self) -> None:
        """At shutdown: the sessions of cancelled copies are abandoned (the copier cleans up)."""
        for transfer in list(self._active.values()):
            if transfer.task is not None:
                transfer.task.cancel()

    async def fetch(self, local: str, digest: Digest, copy: Copy) -> None:
        """Copy the blob unless this process already is; either way, wait for the end. A
        caller that is cancelled does not cancel the copy others wait for."""
        transfer = self.start(local, digest, copy)
        assert transfer.task is not None
        await asyncio.shield(transfer.task)


async def open_follower(transfer: Transfer) -> AsyncGenerator[bytes, None] | None:
    """The blob's bytes as the transfer writes them, or None if the session's file is gone
    already (the copy ended: the store serves the blob). The iterator raises the transfer's
    error, if it fails, before the last byte."""
    assert transfer.path is not None
    try:
        fd = await asyncio.to_thread(os.open, transfer.path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    return _follow(transfer, fd)


async def _follow(transfer: Transfer, fd: int) -> AsyncGenerator[bytes, None]:
    assert transfer.size is not None and transfer.task is not None
    # `final` as the follower started: a copy in this process may follow a failed one
    # elsewhere, and this descriptor is still the other process's file.
    size, task, final = transfer.size, transfer.task, transfer.final
    try:
        offset, checked = 0, False
        while offset < size:
            finished = task.done()
            if finished:
                task.result()  # raises the copy's error: the client gets a cut response
                if final is not None and not checked:  # before the last byte, wherever
                    await asyncio.to_thread(_check_stored, fd, final, transfer.digest, size)
                    checked = True
            # Until the digest is checked, the last byte stays here.
            limit = size - offset if finished else size - 1 - offset
            # What has arrived: told by the copy in this process, else the file's size.
            received = transfer.received if final is None else os.fstat(fd).st_size
            piece: bytes | None = b""
            transfer.moved.clear()
            if not finished and 0 <= received - offset < min(BATCH, limit):
                pass  # a batch is not there yet: wait for more rather than send a crumb
            elif limit > 0:
                piece = transfer.recent_at(offset, limit) if final is None else None
                if piece is None:  # behind the pieces kept (or ahead of the download)
                    piece = await asyncio.to_thread(os.pread, fd, min(PIECE, limit), offset)
            if piece:
                offset += len(piece)
                yield piece
            elif finished:
                raise OSError(f"{transfer.path}: shorter than its {size} bytes")
            else:  # the next piece, or the end of the copy; the file is looked at anyway
                moved = asyncio.ensure_future(transfer.moved.wait())
                await asyncio.wait({moved, task}, timeout=POLL)
                moved.cancel()
    finally:
        os.close(fd)


def _check_stored(fd: int, final: str, digest: Digest, size: int) -> None:
    """The bytes followed are the blob's: the file followed is the one stored at `final`
    (the other process's copy verified it), or, when `final` is another file (dedupe made
    it a link to another repository's copy of the same bytes), the file followed holds
    `digest`'s bytes. Else, say, that copy failed and a later one stored the blob: the
    response is cut short before its last byte."""
    followed = os.fstat(fd)
    try:
        stored = os.stat(final)
    except FileNotFoundError:
        raise OSError(f"{final}: not stored; the copy followed did not store it") from None
    if (stored.st_dev, stored.st_ino) == (followed.st_dev, followed.st_ino):
        return
    hasher = digest.hasher()
    offset = 0
    while offset < size and (piece := os.pread(fd, min(PIECE, size - offset), offset)):
        hasher.update(piece)
        offset += len(piece)
    if offset != size or followed.st_size != size or hasher.hexdigest() != digest.hex:
        raise OSError(f"{final}: not the file followed, nor its bytes; its copy did not store it")
