"""Ordered blocking work beside the event loop: one thread per stream, a bounded queue.

An upload's bytes arrive on the event loop; hashing them and writing them to a file are
blocking, must keep their order, and each costs about as much CPU as receiving. Giving each
of the two a thread of its own that takes jobs in order, with a few jobs outstanding, lets
receiving, hashing and writing run at the same time. Waiting for each job before receiving
more (the thread-pool way) measured slower (docs/performance.md, "Blob push").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Jobs outstanding per lane before `submit` waits: enough to cover a thread hop, few enough
# to bound memory (a job holds ~1 MiB of an upload).
DEPTH = 4


class Lane:
    """Runs jobs in submission order on a thread of its own. After a job fails, the later
    ones are skipped and the failure is raised by `submit` or `drain`."""

    def __init__(self, name: str, depth: int = DEPTH) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._outstanding: deque[asyncio.Future[None]] = deque()
        self._depth = depth
        self._failure: BaseException | None = None  # set by the lane's thread

    async def submit(self, job: Callable[[], object]) -> None:
        """Queue `job`; waits only while `depth` jobs are outstanding."""
        while len(self._outstanding) >= self._depth:
            await self._outstanding.popleft()
        if self._failure is not None:
            raise self._failure
        loop = asyncio.get_running_loop()
        self._outstanding.append(loop.run_in_executor(self._executor, self._run, job))

    async def drain(self) -> None:
        """Wait for every queued job; raises the first failure."""
        while self._outstanding:
            await self._outstanding.popleft()
        if self._failure is not None:
            raise self._failure

    def close(self, last: Callable[[], object] | None = None) -> None:
        """Stop taking jobs without waiting. `last` (closing a file, say) runs after every
        queued job, failed or not, so nothing outlives what it uses."""
        for future in self._outstanding:
            future.add_done_callback(_retrieve)
        self._outstanding.clear()
        if last is not None:
            self._executor.submit(last)
        self._executor.shutdown(wait=False)

    def _run(self, job: Callable[[], object]) -> None:
        if self._failure is not None:
            return
        try:
            job()
        except BaseException as exc:
            self._failure = exc
            raise


def _retrieve(future: asyncio.Future[None]) -> None:
    # Nobody waits for it any more: a failure here is not an unhandled error.
    if not future.cancelled():
        future.exception()
