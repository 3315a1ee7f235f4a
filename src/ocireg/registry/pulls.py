"""When each manifest was last pulled, and how often: what retention rules on pulls
(`pulledWithin`, `mostRecentlyPulledCount`) decide by, and the download counts search
answers with (zot's `DownloadCount`, `LastPullTimestamp`). zot writes its database on every
manifest GET; here a GET only sets an entry in a dict (and adds one to a count), and the
worker hands what gathered to the metadata store every few seconds, so a pull costs the hot
path nothing measurable and a pull time is at most that late. Rules count in hours and days."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ocireg.meta.base import MetaStore, MetaUnavailable

log = logging.getLogger("ocireg.retention")

FLUSH_EVERY = 5.0  # seconds
# Pulls kept for a store that cannot take them; past it those of the flush that failed are
# dropped (retention then sees those manifests as pulled when they were pulled before).
MAX_PENDING = 100_000


class PullLog:
    def __init__(self, meta: MetaStore, clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.clock = clock
        self._pending: dict[str, dict[str, float]] = {}  # repo -> digest -> last pull
        self._counts: dict[str, dict[str, int]] = {}  # repo -> digest -> pulls since a flush
        self._count = 0
        self._task: asyncio.Task[None] | None = None

    def saw(self, repo: str, digest: str) -> None:
        """A client pulled manifest `digest` of `repo` (GET, not HEAD), now."""
        per_repo = self._pending.setdefault(repo, {})
        if digest not in per_repo:
            self._count += 1
        per_repo[digest] = self.clock()
        counts = self._counts.setdefault(repo, {})
        counts[digest] = counts.get(digest, 0) + 1

    async def start(self) -> None:
        """Note, once for the store, since when pulls are kept (retention does not trust
        the lack of a pull before it), and flush every FLUSH_EVERY seconds."""
        with contextlib.suppress(MetaUnavailable):  # noted by the first flush that works
            await self.meta.pulls_since(self.clock())
        self._task = asyncio.create_task(self._every(), name="ocireg-pulls")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending, self._count = self._pending, {}, 0
        counts, self._counts = self._counts, {}
        try:
            if pending:
                await self.meta.pulls_since(self.clock())
            while pending:
                repo, pulls = next(iter(pending.items()))
                await self.meta.record_pulls(repo, pulls, counts.get(repo, {}))
                del pending[repo]
        except MetaUnavailable as exc:
            kept = sum(len(p) for p in pending.values())
            log.warning("pull times not saved yet", extra={"error": str(exc), "pulls": kept})
            if kept + self._count <= MAX_PENDING:
                for repo, pulls in pending.items():  # newer pulls since then win
                    self._pending[repo] = {**pulls, **self._pending.get(repo, {})}
                    since = self._counts.setdefault(repo, {})
                    for digest, count in counts.get(repo, {}).items():
                        since[digest] = since.get(digest, 0) + count
                self._count = sum(len(p) for p in self._pending.values())
