"""A rebuild from storage run in the background when the metadata store comes back empty
(new, or flushed): one at a time per process, and by one process at a time, the one that
took the store's lease."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

log = logging.getLogger("ocireg.registry")
REBUILD_LEASE = 600  # seconds one process may hold a rebuild before another may take over


class BackgroundRebuild:
    def __init__(
        self,
        what: str,
        ready: Callable[[], Awaitable[bool]],
        lock: Callable[[str, int], Awaitable[bool]],
        rebuild: Callable[[], Awaitable[int]],
    ) -> None:
        self.what = what  # for the log: "metadata store", "search index"
        self.ready = ready
        self.lock = lock
        self.rebuild = rebuild
        self._task: asyncio.Task[bool] | None = None

    def kick(self) -> None:
        """Rebuild in the background if the store is empty and nobody else is."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run_if_empty())

    async def run_if_empty(self) -> bool:
        try:
            if await self.ready():
                return False
            if not await self.lock(f"{os.getpid()}", REBUILD_LEASE):
                return False
            count = await self.rebuild()
        except Exception:
            log.exception(f"{self.what} rebuild failed")
            return False
        log.info(f"{self.what} rebuilt from storage", extra={"count": count})
        return True
