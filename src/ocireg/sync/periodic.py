"""The periodic job: each registry entry with `pollInterval` and `content` is polled at start
and then every `pollInterval` after the previous pass ended (a slow pass never overlaps the
next). It runs in the one worker process that maintenance elects per instance, and visits
only the repositories `owns` accepts (in a cluster, the ones this member owns)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ocireg.sync.service import SyncService

log = logging.getLogger("ocireg.sync")


class PeriodicSync:
    def __init__(self, service: SyncService) -> None:
        self.service = service
        wanted = service.settings.periodic
        self.registries = [r for r in service.registries if r.settings in wanted]

    async def run_forever(self, owns: Callable[[str], bool]) -> None:
        if not self.registries:
            return
        due = {i: time.monotonic() for i in range(len(self.registries))}
        while True:
            index = min(due, key=lambda i: due[i])
            await asyncio.sleep(max(0.0, due[index] - time.monotonic()))
            registry = self.registries[index]
            try:
                await self.service.poll(registry, owns)
            except Exception:
                log.exception("periodic sync failed", extra={"upstream": registry.upstream.name})
            due[index] = time.monotonic() + registry.settings.poll_interval
