"""Responses the handlers share: raw header lists, ranges, streamed blob bodies."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from typing import NamedTuple

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ocireg.api.common import decimal
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import ImageStore

_RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
RawHeaders = list[tuple[bytes, bytes]]
# The scope key where a blob GET answered by a redirect leaves the blob's size, so the
# metrics count the download the bucket serves in the registry's place.
REDIRECTED_BYTES = "ocireg.redirected_bytes"


class RawParts(NamedTuple):
    """A whole response as ASGI wants it. The handlers of the hottest routes produce this
    once; `RawResponse` sends it for Starlette and `ocireg.api.fast` sends it directly."""

    status: int
    headers: RawHeaders
    body: bytes


class RawResponse(Response):
    """Starlette's view of `RawParts`: the same status, header list and body."""

    def __init__(self, parts: RawParts) -> None:
        self.status_code, self.raw_headers, self.body = parts
        self.background = None


def blob_headers(
    digest: Digest, size: int, byte_range: tuple[int, int] | None = None
) -> RawHeaders:
    """The headers of a blob GET/HEAD (`size` is the whole blob's)."""
    text = str(digest).encode()
    length = size if byte_range is None else byte_range[1] - byte_range[0] + 1
    headers = [
        (b"docker-content-digest", text),
        (b"etag", b'"' + text + b'"'),
        (b"content-length", str(length).encode()),
    ]
    if byte_range:
        headers.append((b"content-range", f"bytes {byte_range[0]}-{byte_range[1]}/{size}".encode()))
    headers += [(b"accept-ranges", b"bytes"), (b"content-type", b"application/octet-stream")]
    return headers


def redirect_headers(digest: Digest, location: str) -> RawHeaders:
    """The headers of a blob GET answered 307 with the object's presigned URL."""
    return [
        (b"docker-content-digest", str(digest).encode()),
        (b"location", location.encode("latin-1")),
        (b"content-length", b"0"),
    ]


def manifest_headers(digest: Digest, size: int, media_type: str) -> RawHeaders:
    """The headers of a manifest GET/HEAD."""
    text = str(digest).encode()
    return [
        (b"docker-content-digest", text),
        (b"etag", b'"' + text + b'"'),
        (b"content-length", str(size).encode()),
        (b"content-type", media_type.encode("latin-1")),
    ]


def parse_range(header: str, size: int) -> tuple[int, int]:
    """(start, end inclusive) of a single `bytes=` range, or RANGE_INVALID (416). Several
    ranges are not one: `get_blob` answers those with the whole blob before asking."""
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise _unsatisfiable(size, "malformed Range")
    # numbers past int64 are refused, as Go's servers (zot) refuse them
    first, last = decimal(m.group(1) or "0"), decimal(m.group(2) or "0")
    if first is None or last is None:
        raise _unsatisfiable(size, "range number past int64")
    if m.group(1):
        start = first
        end = min(last, size - 1) if m.group(2) else size - 1
        if m.group(2) and last < start:
            raise _unsatisfiable(size, "range end before start")
    else:  # suffix range: the last N bytes
        start, end = max(size - last, 0), size - 1
        if last == 0:
            raise _unsatisfiable(size, "empty suffix range")
    if start >= size:
        raise _unsatisfiable(size, "range starts beyond the blob")
    return start, end


def _unsatisfiable(size: int, why: str) -> RegistryError:
    return RegistryError(
        ErrorCode.RANGE_INVALID,
        detail={"reason": why},
        headers={"Content-Range": f"bytes */{size}"},
    )


class StreamSlots:
    """How many blob downloads this worker process streams through Python at once.

    Two ways to send a local blob, each faster where the other is slow (docs/performance.md,
    "Blob pull", for the figures): Python reading 1 MiB pieces ahead of the socket is the
    fastest for one download, but every byte then passes the event loop, so concurrent
    downloads share one core and each holds several MiB for a slow client. Granian's
    pathsend reads 128 KiB pieces on its own threads: slower for one stream, faster for
    many, and it holds little memory. So a worker streams
    at most `limit` large downloads itself and hands the others to pathsend."""

    def __init__(self, limit: int = 1) -> None:
        self.limit = limit
        self.active = 0

    def take(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


# Below this, a download is short enough that pathsend's per-piece latency does not matter
# and the event loop is better left to other requests.
STREAM_MIN = 8 << 20
# The pieces of a range streamed without a slot: pathsend's size. What a client that stops
# reading leaves queued in the worker is a few pieces: ~0.8 MiB of these, ~10 MiB of 1 MiB
# pieces (docs/performance.md, "Blob pull").
SMALL_PIECE = 128 << 10


class BlobResponse(Response):
    """A blob body: streamed by this process (see `StreamSlots`) or sent by Granian from the
    file (pathsend). Ranges and remote (S3) blobs are always streamed: remote ones as they
    arrive, a local range 1 MiB at a time with a slot, else in SMALL_PIECEs.
    HEAD is `head_blob_parts`: headers, no body."""

    def __init__(
        self,
        store: ImageStore,
        repo: str,
        digest: Digest,
        size: int,
        byte_range: tuple[int, int] | None = None,
        slots: StreamSlots | None = None,
        pieces: AsyncGenerator[bytes, None] | None = None,
    ) -> None:
        self.store = store
        self.repo = repo
        self.digest = digest
        self.byte_range = byte_range
        self.slots = slots
        self.pieces = pieces  # the blob's bytes, opened already (`BlobStore.download`)
        self.status_code = 206 if byte_range else 200
        self.body = b""
        self.background = None
        self.raw_headers = blob_headers(digest, size, byte_range)
        self._length = size if byte_range is None else byte_range[1] - byte_range[0] + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self.store.blobs.local_path(self.repo, self.digest)
        extensions = scope.get("extensions") or {}
        if path is None or "http.response.pathsend" not in extensions:
            await self._stream(receive, send)
        elif self._length >= STREAM_MIN and self.slots is not None and self.slots.take():
            try:
                await self._stream(receive, send)
            finally:
                self.slots.release()
        elif self.byte_range is not None:
            # pathsend sends whole files only: a range without a slot is streamed in pieces
            # as small as pathsend's, so that many clients that stop reading (a range is
            # anyone's to ask for) cannot hold ~10 MiB each of this worker's memory.
            await self._stream(receive, send, SMALL_PIECE)
        else:
            await send(self._start())
            await send({"type": "http.response.pathsend", "path": path})

    def _start(self) -> Message:
        return {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }

    async def _stream(self, receive: Receive, send: Send, piece_size: int | None = None) -> None:
        offset = self.byte_range[0] if self.byte_range else 0
        chunks = self.pieces or self.store.blobs.read(
            self.repo, self.digest, offset, self._length, piece_size
        )
        first = await anext(chunks, b"")  # a blob deleted since the stat fails here, cleanly
        await send(self._start())
        # Granian's send does not fail once the client has gone, so a watcher tells: a
        # download the client abandoned stops reading the file.
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            left = self._length - len(first)
            # The last piece says more_body=False: a blob of one piece is one message.
            await send({"type": "http.response.body", "body": first, "more_body": left > 0})
            async for chunk in chunks:
                if gone.done():
                    break
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
            if left > 0 and not gone.done():  # shorter than its size said: end the body
                await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()
            await chunks.aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
