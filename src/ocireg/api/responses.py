"""Responses the handlers share: raw header lists, ranges, streamed blob bodies."""

from __future__ import annotations

import asyncio
import re
from typing import NamedTuple

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import ImageStore
from ocireg.storage import PathNotFound

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
RawHeaders = list[tuple[bytes, bytes]]


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


def parse_range(header: str, size: int) -> tuple[int, int]:
    """(start, end inclusive) of a single `bytes=` range, or RANGE_INVALID (416)."""
    m = _RANGE_RE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise _unsatisfiable(size, "malformed or multi-part Range")
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            raise _unsatisfiable(size, "range end before start")
    else:  # suffix range: the last N bytes
        start, end = max(size - int(last), 0), size - 1
        if int(last) == 0:
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


class BlobResponse(Response):
    """A blob body, streamed from the driver in 1 MiB pieces (the filesystem driver reads the
    next piece while one is sent). Not Granian's pathsend: it reads the file in 128 KiB
    pieces through its blocking-thread pool, and measured slower and costlier in CPU than
    this (docs/performance.md). HEAD is `head_blob_parts`: headers, no body."""

    def __init__(
        self,
        store: ImageStore,
        repo: str,
        digest: Digest,
        size: int,
        byte_range: tuple[int, int] | None = None,
    ) -> None:
        self.store = store
        self.repo = repo
        self.digest = digest
        self.byte_range = byte_range
        self.status_code = 206 if byte_range else 200
        self.body = b""
        self.background = None
        self.raw_headers = blob_headers(digest, size, byte_range)
        self._length = size if byte_range is None else byte_range[1] - byte_range[0] + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        offset = self.byte_range[0] if self.byte_range else 0
        chunks = self.store.blobs.read(self.repo, self.digest, offset, self._length)
        try:
            first = await anext(chunks, b"")  # a blob deleted since the stat fails here, cleanly
        except PathNotFound:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, detail={"digest": str(self.digest)}
            ) from None
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
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
