"""Background garbage collection and scrub, in exactly one worker process per instance.

Granian runs N workers; each starts this task, and the one that holds a non-blocking flock on
`<root>/.ocireg/maintenance-<address>-<port>.lock` runs the schedule. The others keep trying
now and then, so when the elected worker dies (the kernel drops its lock) another takes over.
The lock name carries the listening address because cluster members may share one root
directory and each member must still maintain its own repositories.

With dedupe on local disk the elected worker first dedupes what is stored (ops/dedupe.py),
once, as zot does at start-up. GC runs every `storage.gcInterval` (0: only on demand,
`ocireg gc`), starting only inside `storage.gcTimeWindow` when one is set; scrub every
`extensions.scrub.interval` when scrub is enabled. Each visits only the repositories that
`owns` accepts: in a cluster, the ones this member owns. `background` jobs (periodic sync)
run for as long as the elected worker does, with the same `owns`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TypeVar

from ocireg.cluster.membership import Membership
from ocireg.cluster.peers import Peers
from ocireg.config import Config
from ocireg.ops.dedupe import DedupeReport, Deduplicator
from ocireg.ops.gc import GarbageCollector, GCReport
from ocireg.ops.runs import Checkpoint, owns_everything
from ocireg.ops.scrub import Scrubber, ScrubReport
from ocireg.registry import ImageStore
from ocireg.registry.layout import PRIVATE_DIR
from ocireg.server import metrics
from ocireg.server.services import dedupes_on_disk
from ocireg.settings.subpaths import sub_path_of

log = logging.getLogger("ocireg.maintenance")
ELECTION_RETRY = 5.0
R = TypeVar("R")
BackgroundJob = Callable[[Callable[[str], bool]], Coroutine[None, None, None]]


def owner_filter(
    membership: Membership | None, peers: Peers | None = None
) -> Callable[[str], bool]:
    """Which repositories this instance maintains: all of them, or in a cluster the ones
    it owns (the request-routing rule), so that each is maintained exactly once; on shared
    storage also those of a member that is down, when this one is first in line for them."""
    if membership is None:
        return owns_everything
    if peers is None:
        local = membership.local_index
        return lambda repo: membership.owner_of(repo) == local

    def maintains(repo: str) -> bool:
        current = peers.membership  # the list may change while serving (Peers.update)
        return peers.maintainer_of(current.owner_member(repo)) == current.local_member

    return maintains


def leader_lock_path(config: Config) -> Path:
    member = re.sub(r"[^A-Za-z0-9.]+", "_", f"{config.http.address}-{config.http.port}")
    return config.storage.root_directory / PRIVATE_DIR / f"maintenance-{member}.lock"


def checkpoint_of(config: Config, job: str) -> Checkpoint:
    """Where this instance's `job` runs note their progress: the server's runs and the
    command's (`ocireg gc`, `ocireg scrub`) with the same config resume each other's."""
    member = f"{config.http.address}:{config.http.port}"
    return Checkpoint.of(config.storage.root_directory, job, member)


def gc_intervals(config: Config) -> dict[str, float]:
    """How often the background GC collects each storage with gc on: the default's ("")
    every `storage.gcInterval`, each sub path's (by route) every one of its own, as zot
    schedules each image store."""
    intervals = {"": config.storage.gc_interval} if config.storage.gc else {}
    intervals.update({sub.route: sub.gc_interval for sub in config.sub_paths if sub.gc})
    return {area: every for area, every in intervals.items() if every > 0}


class Maintenance:
    def __init__(
        self,
        config: Config,
        store: ImageStore,
        owns: Callable[[str], bool] = owns_everything,
        background: Sequence[BackgroundJob] = (),
    ) -> None:
        self.config = config
        self.store = store
        self.owns = owns
        self.gc_intervals = gc_intervals(config)
        scrub = config.scrub
        self.scrub_interval = scrub.interval if scrub.enabled else 0.0
        self.background = tuple(background)
        # zot's start-up dedupe of what is stored already (ops/dedupe.py): local disk only
        self.dedupe_at_start = dedupes_on_disk(config)
        self._task: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None

    def start(self) -> None:
        if self.gc_intervals or self.scrub_interval > 0 or self.background or self.dedupe_at_start:
            self._task = asyncio.create_task(self._main(), name="ocireg-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    async def run_gc(self, area: str = "") -> dict[str, int]:
        """Collect the repositories of one storage: the default's (""), or a sub path's."""
        collector = GarbageCollector.of(self.store, self.config)
        totals = dict.fromkeys(
            ("repositories", "manifests", "blobs", "uploads", "uploads_busy", "bytes_freed"), 0
        )

        def tally(report: GCReport) -> None:
            metrics.record_gc(report)
            totals["repositories"] += 1
            for key in ("manifests", "blobs", "uploads", "uploads_busy"):
                totals[key] += len(getattr(report, key))
            totals["bytes_freed"] += report.bytes_freed

        def collected(repo: str) -> bool:
            sub = sub_path_of(self.config.sub_paths, repo)
            return (sub.route if sub else "") == area and self.owns(repo)

        checkpoint = self._checkpoint(f"gc-{area}" if area else "gc")  # a run resumes its own
        await self._timed("gc", collector.run(collected, checkpoint), tally)
        self._logged("gc run", **({"subPath": f"/{area}"} if area else {}), **totals)
        return totals

    async def run_scrub(self) -> dict[str, int]:
        scrubber = Scrubber(self.store)
        totals = dict.fromkeys(("repositories", "blobs", "problems"), 0)

        def tally(report: ScrubReport) -> None:
            metrics.record_scrub(report)
            totals["repositories"] += 1
            totals["blobs"] += report.blobs
            totals["problems"] += len(report.problems)

        await self._timed("scrub", scrubber.run(self.owns, self._checkpoint("scrub")), tally)
        self._logged("scrub run", **totals)
        return totals

    async def run_dedupe(self) -> None:
        totals = dict.fromkeys(("repositories", "linked", "bytes_saved"), 0)

        def tally(report: DedupeReport) -> None:
            totals["repositories"] += 1
            totals["linked"] += report.linked
            totals["bytes_saved"] += report.bytes_saved

        run = Deduplicator(self.store).run(self.owns, self._checkpoint("dedupe"))
        await self._timed("dedupe", run, tally, recorded=False)
        self._logged("dedupe run", **totals)

    def _checkpoint(self, job: str) -> Checkpoint:
        return checkpoint_of(self.config, job)

    @staticmethod
    async def _timed(
        name: str, run: AsyncIterator[R], tally: Callable[[R], None], recorded: bool = True
    ) -> None:
        """Go through a run, one report at a time, and record it in the metrics (gc and
        scrub: `recorded`); a failed run is logged (its checkpoint stays: the next run
        resumes)."""
        started = time.monotonic()
        failed = False
        try:
            async for report in run:
                tally(report)
        except Exception:
            log.exception(f"{name} run failed")
            failed = True
        if recorded:
            metrics.record_run(name, time.monotonic() - started, failed)

    @staticmethod
    def _logged(message: str, **counts: int | str) -> None:
        log.info(message, extra={"pid": os.getpid(), **counts})

    async def _main(self) -> None:
        # A flock cannot be awaited: poll it, rarely (it only changes when a worker dies).
        while True:
            if self._elect():
                break
            await asyncio.sleep(ELECTION_RETRY)
        log.info(
            "maintenance runs in this worker",
            extra={"pid": os.getpid(), "gc_intervals": self.gc_intervals},
        )
        jobs = [asyncio.create_task(job(self.owns)) for job in self.background]
        if self.dedupe_at_start:
            jobs.append(asyncio.create_task(self.run_dedupe()))
        try:
            await self._schedule()
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.cancel()

    async def _schedule(self) -> None:
        if not self.gc_intervals and self.scrub_interval <= 0:
            return
        now = time.monotonic()
        next_gc = {area: now + every for area, every in self.gc_intervals.items()}
        next_scrub = now + self.scrub_interval if self.scrub_interval > 0 else float("inf")
        while True:
            soonest = min((*next_gc.values(), next_scrub))
            await asyncio.sleep(max(0.0, soonest - time.monotonic()))
            due = sorted(area for area, at in next_gc.items() if time.monotonic() >= at)
            wait = self._until_gc_window() if due else 0.0
            for area in due:
                if wait > 0:  # a run is due, and waits for its window to open
                    next_gc[area] = time.monotonic() + wait
                    continue
                await self.run_gc(area)
                # Measured from the end of the run: a slow run never overlaps the next one.
                next_gc[area] = time.monotonic() + self.gc_intervals[area]
            if time.monotonic() >= next_scrub:
                await self.run_scrub()
                next_scrub = time.monotonic() + self.scrub_interval

    def _until_gc_window(self) -> float:
        window = self.config.storage.gc_time_window
        wait = 0.0 if window is None else window.wait(time.time())
        if wait > 0:
            log.info(
                "gc deferred until its time window",
                extra={"gcTimeWindow": str(window), "seconds": round(wait)},
            )
        return wait

    def _elect(self) -> bool:
        path = leader_lock_path(self.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True
