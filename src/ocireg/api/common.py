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
# Every count, size and offset a request can name is at most this: Go's int64, which zot
# parses them as (strconv), refusing larger ones.
NUMBER_CEILING = (1 << 63) - 1

T = TypeVar("T")


def decimal(text: str) -> int | None:
    """`text` as a number if it is ASCII digits only and at most NUMBER_CEILING, else None
    (then invalid, as zot answers it). `str.isdigit` also takes "²", which `int` refuses, and
    `int` refuses more than 4,300 digits: both were a ValueError, a 500."""
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > 19:
        return None
    value = int(digits)
    return value if value <= NUMBER_CEILING else None


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


class BodyBudget:
    """The bytes of request bodies (manifests) this worker process holds in memory at once.

    Counted as they arrive, so a client that declares a large body and stalls holds only what
    it sent; stalled bodies end with the idle timeout (`http.bodyIdleTimeout`) and give their
    share back. A request that would go past the budget is answered 429 at once: waiting would
    only let the stalled requests hold more."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


@contextlib.asynccontextmanager
async def limited_body(
    request: Request, limit: int, too_large: ErrorCode = ErrorCode.MANIFEST_TOO_LARGE
) -> AsyncIterator[bytes]:
    """The whole body, while the `with` lasts, if it is at most `limit` bytes (else 413
    `too_large`) and fits in this worker's budget (else 429 TOOMANYREQUESTS). Either
    error comes after the body has been read (up to MAX_DRAIN), so that the client sees the
    answer, not a reset."""
    budget: BodyBudget = request.app.state.body_budget
    declared = decimal(request.headers.get("content-length") or "")
    body = request.stream()
    size = held = 0
    parts: list[bytes] = []
    try:
        error = None
        if declared is not None and declared > limit:
            error = RegistryError(too_large, detail={"limit": limit})
        else:
            async for chunk in body:
                if size + len(chunk) > limit:
                    error = RegistryError(too_large, detail={"limit": limit})
                elif not budget.take(len(chunk)):
                    error = RegistryError(
                        ErrorCode.TOOMANYREQUESTS,
                        "too many manifest bodies in progress here; try again",
                        {"budget": budget.limit},
                        headers={"Retry-After": "1"},
                    )
                else:
                    parts.append(chunk)
                    held += len(chunk)
                size += len(chunk)
                if error is not None:
                    break
        if error is not None:
            parts.clear()
            with contextlib.suppress(Exception):  # a stalled body: the answer is still ours
                await _drain(body, size)
            raise error
        whole = b"".join(parts)
        parts.clear()  # one copy held, the one counted
        yield whole
    finally:
        budget.give(held)


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
