"""Helpers every handler uses: the store, the request's target, bounded body reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import ImageStore
from ocireg.target import Target, target_of

# Past this, a body is not worth reading to the end just to answer an error politely.
MAX_DRAIN = 64 << 20

T = TypeVar("T")


def store_of(request: Request) -> ImageStore:
    store: ImageStore = request.app.state.store
    return store


def target(request: Request) -> Target:
    """What the request is aimed at, as classified once for every layer."""
    return target_of(request.scope)


def repo_name(request: Request) -> str:
    """The repository of a repository endpoint (validated by the classification)."""
    repository = target(request).repository
    assert repository is not None, "a repository endpoint always has a repository"
    return repository


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes; else 413 MANIFEST_INVALID, after the
    body has been read (up to MAX_DRAIN) so that the client sees the answer, not a reset."""
    declared = request.headers.get("content-length")
    body = request.stream()
    size = 0
    if not (declared is not None and declared.isdigit() and int(declared) > limit):
        parts: list[bytes] = []
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                break
            parts.append(chunk)
        else:
            return b"".join(parts)
    await _drain(body, size)
    raise RegistryError(ErrorCode.MANIFEST_TOO_LARGE, detail={"limit": limit})


async def with_body(request: Request, use: Callable[[AsyncIterator[bytes]], Awaitable[T]]) -> T:
    """`use(body)`; when it fails before reading the whole body (storage refusing a write,
    say), the rest is read and dropped (`_drain`) before the error is answered."""
    body = request.stream()
    try:
        return await use(body)
    except ClientDisconnect:
        raise
    except Exception:
        with contextlib.suppress(Exception):
            await _drain(body, 0)
        raise


async def _drain(body: AsyncIterator[bytes], read: int) -> None:
    """Read and drop the rest of `body` until MAX_DRAIN bytes have been read in all (`read`
    of them already): an HTTP/1.1 client still sending its body would otherwise meet a
    reset instead of the error answered."""
    if read > MAX_DRAIN:
        return
    async for chunk in body:
        read += len(chunk)
        if read > MAX_DRAIN:
            break
