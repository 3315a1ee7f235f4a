"""Writes to a repository's index.json, coalesced (group commit).

Each write of index.json rewrites the whole file, and on a busy repository the file write is
most of a tag write's cost (docs/performance.md, "Tag writes"). Writers of one repository in
one process therefore queue their change; one task per repository takes the repository lock
and applies everything queued so far in one conditional write, then answers each writer.
A writer's answer comes only after the write that contains its change: an acknowledged tag
is stored. The task runs apart from the requests, so a client that goes away cannot leave
the others waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ocireg.registry.index import Batch, IndexCache, IndexChange
from ocireg.registry.locks import LocalLocks

Prepare = Callable[[], Awaitable[None]]


@dataclass
class _Job:
    change: IndexChange
    prepare: Prepare | None  # run under the lock first; if it raises, the change is dropped
    future: asyncio.Future[Any]


class IndexWriter:
    def __init__(self, indexes: IndexCache, locks: LocalLocks) -> None:
        self.indexes = indexes
        self.locks = locks
        self._queues: dict[str, list[_Job]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}

    async def write(self, repo: str, change: IndexChange, prepare: Prepare | None = None) -> Any:
        """Apply `change` to `repo`'s index (after `prepare`, under the repository lock);
        its result once the write that holds it is done."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(repo, []).append(_Job(change, prepare, future))
        if repo not in self._flushers:
            self._flushers[repo] = asyncio.create_task(self._flush(repo))
        return await asyncio.shield(future)

    async def _flush(self, repo: str) -> None:
        try:
            async with self.locks.repo(repo):
                while jobs := self._queues.pop(repo, None):
                    await self._write(repo, jobs)
        finally:
            del self._flushers[repo]
            if self._queues.get(repo):  # queued while this task was finishing
                self._flushers[repo] = asyncio.create_task(self._flush(repo))

    async def _write(self, repo: str, jobs: list[_Job]) -> None:
        ready: list[_Job] = []
        for job in jobs:
            try:
                if job.prepare is not None:
                    await job.prepare()
            except Exception as exc:
                job.future.set_exception(exc)
            else:
                ready.append(job)
        if not ready:
            return
        try:
            results = await self.indexes.update(repo, Batch([job.change for job in ready]))
        except Exception as exc:
            for job in ready:
                job.future.set_exception(exc)
            return
        for job, result in zip(ready, results, strict=True):
            job.future.set_result(result)
