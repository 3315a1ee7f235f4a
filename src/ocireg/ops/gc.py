"""Garbage collection of one repository at a time, zot's rules (`storage.gc`, `gcDelay`).

Kept: every tagged manifest, every manifest younger than gcDelay, every untagged manifest
marked `io.ocireg.keep` (sync stores so an image a client pulled by digest through the cache:
docs/sync.md), and transitively whatever
a kept manifest names (index children, config, layers, subject) plus the referrers of kept
manifests. Removed: the other index.json entries (untagged, old, unreferenced), then blob
files nothing kept names and older than gcDelay, then upload sessions idle for gcDelay, and
the files left beside them (dot names, such as a sync copy's marker) just as old.

Safety: the repository lock is held while deciding and deleting (manifest pushes check
their blobs under the same lock), and gcDelay covers blobs pushed moments before the
manifest that will name them. index.json is rewritten before any file is deleted, so a crash
leaves only unreferenced files for the next run. Blobs shared between repositories are
hard links or copies per repository here, so each repository is collected on its own.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ocireg.digest import Digest
from ocireg.ops.content import (
    References,
    StoredFile,
    list_blobs,
    read_manifest,
    references,
)
from ocireg.ops.runs import Checkpoint, each_repository, owns_everything
from ocireg.registry import ImageStore, layout
from ocireg.registry.index import Index, is_kept, tag_of
from ocireg.registry.locks import LockBusy
from ocireg.storage import PathNotFound

log = logging.getLogger("ocireg.gc")


@dataclass
class GCReport:
    repository: str
    dry_run: bool
    manifests: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    # Sessions old enough to go but receiving bytes right now: left for the next run.
    uploads_busy: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    bytes_kept: int = 0  # blob bytes left in the repository
    skipped: str | None = None  # why manifests and blobs were left alone

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "repository": self.repository,
            "dryRun": self.dry_run,
            "manifests": self.manifests,
            "blobs": self.blobs,
            "uploads": self.uploads,
            "bytesFreed": self.bytes_freed,
            "bytesKept": self.bytes_kept,
        }
        if self.uploads_busy:
            out["uploadsBusy"] = self.uploads_busy
        if self.skipped:
            out["skipped"] = self.skipped
        return out


class GarbageCollector:
    def __init__(
        self,
        store: ImageStore,
        delay: float,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.driver = store.driver
        self.delay = delay
        self.dry_run = dry_run
        self.clock = clock

    def run(
        self,
        owns: Callable[[str], bool] = owns_everything,
        checkpoint: Checkpoint | None = None,
        at_once: int = 1,
    ) -> AsyncIterator[GCReport]:
        """Collect every repository that `owns` accepts (in a cluster: the ones we own), one
        report at a time (`ops.runs`)."""
        return each_repository(
            self.store, "gc", self.collect, owns, checkpoint, log, at_once=at_once
        )

    async def collect(self, repo: str) -> GCReport:
        report = GCReport(repo, self.dry_run)
        cutoff = self.clock() - self.delay
        async with self.store.locks.repo(repo):
            await self._collect_content(repo, cutoff, report)
        # Upload sessions need no repository lock: each has its own, taken per session.
        await self._collect_uploads(repo, cutoff, report)
        if (
            report.manifests
            or report.blobs
            or report.uploads
            or report.uploads_busy
            or report.skipped
        ):
            log.info("gc", extra=report.as_json())
        return report

    async def _collect_content(self, repo: str, cutoff: float, report: GCReport) -> None:
        try:
            index = await self.store.indexes.load(repo)
        except ValueError as exc:
            report.skipped = f"index.json is not valid: {exc}"
            return
        if index is None:
            return
        blobs = await list_blobs(self.driver, repo)
        kept, named, unreadable = await self._mark(index, blobs, cutoff)
        if unreadable:
            # Whatever that manifest names is unknown, so nothing can be proven unreferenced.
            report.skipped = f"kept manifest cannot be read: {unreadable}"
            report.bytes_kept = sum(b.size for b in blobs.values())
            return
        report.manifests = [d for d in index.digests() if d not in kept]
        doomed = [
            b for d, b in blobs.items() if d not in kept and d not in named and b.stamp <= cutoff
        ]
        report.blobs = sorted(b.name for b in doomed)
        report.bytes_freed = sum(b.size for b in doomed)
        report.bytes_kept = sum(b.size for b in blobs.values()) - report.bytes_freed
        if self.dry_run:
            return
        if report.manifests:
            gone = set(report.manifests)

            def change(idx: Index) -> None:
                idx.manifests = [d for d in idx.manifests if d.get("digest") not in gone]

            await self.store.indexes.update(repo, change)
        for blob in doomed:
            # zot's dedupe stubs elsewhere may stand for these bytes: they keep them.
            await self.store.blobs.before_delete(repo, Digest.parse(blob.name), blob.size)
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(blob.path)

    async def _mark(
        self, index: Index, blobs: dict[str, StoredFile], cutoff: float
    ) -> tuple[set[str], set[str], str | None]:
        """(kept manifests, digests they name, a kept manifest we could not read)."""
        entries = index.digests()
        cache: dict[str, References | None] = {}
        by_subject: dict[str, list[str]] = {}
        for digest in entries:
            refs = await self._references(blobs.get(digest), cache)
            if refs is not None and refs.subject:
                by_subject.setdefault(refs.subject, []).append(digest)
        tagged = {
            d["digest"] for d in index.manifests if (tag_of(d) or is_kept(d)) and "digest" in d
        }
        # An entry whose blob is gone is left for scrub to report, not silently dropped.
        young = {d for d in entries if d not in blobs or blobs[d].stamp > cutoff}
        stack = list(tagged | young)
        kept: set[str] = set()
        named: set[str] = set()
        while stack:
            digest = stack.pop()
            if digest in kept:
                continue
            kept.add(digest)
            stack.extend(by_subject.get(digest, ()))
            blob = blobs.get(digest)
            if blob is None:
                continue
            refs = await self._references(blob, cache)
            if refs is None:
                return kept, named, digest
            named |= refs.digests
            stack.extend(refs.manifests)
        return kept, named, None

    async def _references(
        self, blob: StoredFile | None, cache: dict[str, References | None]
    ) -> References | None:
        if blob is None:
            return None
        if blob.name not in cache:
            body = await read_manifest(self.driver, blob)
            cache[blob.name] = None if body is None else references(body)
        return cache[blob.name]

    async def _collect_uploads(self, repo: str, cutoff: float, report: GCReport) -> None:
        # The session store lists sessions itself: on S3 `.uploads` cannot be listed
        # everywhere, and a session's bytes may sit in a multipart upload that only S3 knows.
        for session in await self.store.sessions.list(layout.uploads_dir(repo)):
            name = session.path.rsplit("/", 1)[-1]
            if session.mtime > cutoff:
                continue
            try:
                # Never wait for a session's lock: its holder may be receiving a body slowly
                # for as long as its client likes, and every repository after this one would
                # wait too. A busy session is not idle anyway; the next run looks again.
                # (A dry run takes the lock too, for a moment, to report the same.)
                async with self.store.locks.upload(name, wait=False):
                    # A request may have resumed the session since it was listed: the store
                    # checks its age again.
                    if self.dry_run or await self.store.sessions.expire(session.path, cutoff):
                        report.uploads.append(name)
            except LockBusy:
                report.uploads_busy.append(name)
        await self._collect_leftovers(repo, cutoff, report)
        report.uploads.sort()
        report.uploads_busy.sort()

    async def _collect_leftovers(self, repo: str, cutoff: float, report: GCReport) -> None:
        """Dot files beside the sessions, older than gcDelay: what a process killed in the
        middle of its work left there, which no session listing takes. Today that is a sync
        copy's marker (`sync/copier.py`), written on local storage only, so S3 is not listed
        for them. Nothing waits on such a file: a live copy's marker only tells the other
        worker processes which session to follow, and they wait for its lock without it."""
        directory = layout.uploads_dir(repo)
        if self.driver.local_path(directory) is None:
            return
        try:
            names = await self.driver.list(directory)
        except PathNotFound:
            return
        for name in names:
            if not name.startswith(".") or name.endswith("/"):
                continue
            path = f"{directory}/{name}"
            with contextlib.suppress(PathNotFound):  # removed meanwhile (its copy ended)
                if (await self.driver.stat(path)).mtime > cutoff:
                    continue
                if not self.dry_run:
                    await self.driver.delete(path)
                report.uploads.append(name)
