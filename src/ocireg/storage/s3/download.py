"""The body of an S3 GET as the pieces aiohttp received, without copying them again.

aiobotocore's `iter_chunks(n)` reads through aiohttp's `StreamReader.read(n)`, which cuts and
joins the received pieces to make each chunk up to `n` bytes: one more copy of most bytes.
Taking each received piece as it is (`readchunk`) skips that copy, and about a fifth of the
worker's CPU per byte pulled (docs/performance.md, "S3 downloads"): on a machine where
SeaweedFS, the worker and the client share the cores, that CPU is what limits the pull.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

# What aiohttp buffers before it stops reading the socket: twice this (its high-water
# mark). Each stalled download holds that much besides what Granian has queued
# (tests/s3/test_downloads.py); 1 MiB cost the same CPU as 256 KiB, and +13 MiB peak RSS.
READ_PIECE = 256 << 10


def pieces(body: Any) -> AsyncIterator[bytes]:
    """The pieces of `body` (an aiobotocore `StreamingBody`) in order, each as received."""
    # aiobotocore keeps the aiohttp response as `_raw_stream`; another HTTP session class
    # (httpx) or a future aiobotocore without it gets the library's own chunking.
    content = getattr(getattr(body, "_raw_stream", None), "content", None)
    if content is None or not hasattr(content, "readchunk"):
        chunks: AsyncIterator[bytes] = body.iter_chunks(READ_PIECE)
        return chunks
    return _received(content)


async def _received(content: Any) -> AsyncIterator[bytes]:
    # Recent aiohttp raises its buffer limits to what `read(n)` asks for; `readchunk` does
    # not ask: set the limits `iter_chunks(READ_PIECE)` had (older aiohttp keeps 64/128 KiB).
    if hasattr(content, "set_read_chunk_size"):
        content.set_read_chunk_size(READ_PIECE)
    while True:
        piece, chunk_end = await content.readchunk()
        if piece:
            yield piece
        elif not chunk_end:  # (b"", False): the end of the body
            return
