"""Work on a stream of items, several at once, with the results in the items' order.

Runs over every repository (gc, scrub, rebuild-meta) and the walk that finds them spend most
of their time waiting for storage round trips on S3; working on a few repositories at once
hides that wait, while yielding in order keeps what makes those runs resumable: when a result
is yielded, every item before it is done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def ordered(
    items: AsyncIterable[T] | Iterable[T], work: Callable[[T], Awaitable[R]], at_once: int
) -> AsyncGenerator[tuple[T, R], None]:
    """(item, result of `work(item)`) for each item, in the items' order, with up to `at_once`
    works running (so at most that many results held). A failure is raised in its place,
    after the results before it; leaving the loop early cancels the works still running."""
    if at_once <= 1:  # one at a time: no task per item (local storage asks for this)
        async for item in _each(items):
            yield item, await work(item)
        return
    running: deque[tuple[T, asyncio.Future[R]]] = deque()
    try:
        async for item in _each(items):
            running.append((item, asyncio.ensure_future(work(item))))
            if len(running) >= at_once:
                first, result = running.popleft()
                yield first, await result
        while running:
            first, result = running.popleft()
            yield first, await result
    finally:
        for _, result in running:
            result.cancel()
        if running:
            await asyncio.gather(*(result for _, result in running), return_exceptions=True)


async def _each(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
