"""Helpers every handler uses: the store, the validated name, bounded body reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from ocireg import names
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import ImageStore

# Past this, a body is not worth reading to the end just to answer an error politely.
MAX_DRAIN = 64 << 20

T = TypeVar("T")


def store_of(request: Request) -> ImageStore:
    store: ImageStore = request.app.state.store
    return store


def repo_name(request: Request) -> str:
    return names.validate_name(request.path_params["name"])


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes; else 413 MANIFEST_INVALID, after the
    body has been read (up to MAX_DRAIN) so that the client sees the answer, not a reset."""
    declared = request.headers.get("content-length")
    parts: list[bytes] = []
    size = 0
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            parts.clear()
            if size > MAX_DRAIN:
                break
            continue
        parts.append(chunk)
    if too_large:
        raise RegistryError(
            ErrorCode.MANIFEST_INVALID,
            "manifest too large",
            {"limit": limit},
            status=413,
        )
    return b"".join(parts)


async def with_body(request: Request, use: Callable[[AsyncIterator[bytes]], Awaitable[T]]) -> T:
    """`use(body)`; when it fails before reading the whole body (storage refusing a write,
    say), the rest, up to MAX_DRAIN, is read and dropped before the error is answered: an
    HTTP/1.1 client still sending would otherwise meet a reset instead of the answer."""
    body = request.stream()
    try:
        return await use(body)
    except ClientDisconnect:
        raise
    except Exception:
        drained = 0
        with contextlib.suppress(Exception):
            async for chunk in body:
                drained += len(chunk)
                if drained > MAX_DRAIN:
                    break
        raise
