"""Garbage collection of one repository at a time, zot's rules (`storage.gc`, `gcDelay`).

Kept: every tagged manifest, every manifest younger than gcDelay, every untagged manifest
marked `io.ocireg.keep` (sync stores so an image a client pulled by digest through the cache:
docs/sync.md), and transitively whatever
a kept manifest names (index children, config, layers, subject) plus the referrers of kept
manifests. Removed: the other index.json entries (untagged, old, unreferenced), then blob
files nothing kept names and older than gcDelay, then upload sessions idle for gcDelay, and
the files left beside them (dot names, such as a sync copy's marker) just as old.

With `storage.retention` (zot's policies, `ops/retention.py`), before that: the tags the
repository's policy does not keep leave index.json, its `delay` replaces gcDelay for untagged
manifests, `deleteUntagged: false` keeps them all, `keepUntagged` those its rules keep, and
`deleteReferrers: false` every referrer. `dryRun` decides and logs, and changes index.json
in nothing: only blobs that no entry names are collected, as in zot.

Safety: the repository lock is held while deciding and deleting (manifest pushes check
their blobs under the same lock), and gcDelay covers blobs pushed moments before the
manifest that will name them. index.json is rewritten before any file is deleted, so a crash
leaves only unreferenced files for the next run. Blobs shared between repositories are
hard links or copies per repository here, so each repository is collected on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ocireg.config import Config
from ocireg.digest import Digest
from ocireg.logs import audit_log
from ocireg.ops.content import (
    References,
    StoredFile,
    list_blobs,
    read_manifest,
    references,
)
from ocireg.ops.retention import Times, dropped_tags, kept_untagged
from ocireg.ops.runs import Checkpoint, each_repository, owns_everything
from ocireg.registry import ImageStore, layout
from ocireg.registry.index import Index, is_kept, tag_of
from ocireg.registry.locks import LockBusy
from ocireg.settings.retention import RetentionPolicy, RetentionSettings
from ocireg.settings.subpaths import route_of
from ocireg.storage import PathNotFound

log = logging.getLogger("ocireg.gc")


@dataclass
class GCReport:
    repository: str
    dry_run: bool  # `ocireg gc --dry-run`: nothing was changed
    manifests: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # removed by the retention policy
    blobs: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    # Sessions old enough to go but receiving bytes right now: left for the next run.
    uploads_busy: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    bytes_kept: int = 0  # blob bytes left in the repository
    skipped: str | None = None  # why manifests and blobs were left alone
    # retention's `dryRun`: tags and manifests were only decided (blobs and uploads went)
    decided_only: bool = False

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
        if self.tags:
            out["tags"] = self.tags
        if self.decided_only:
            out["retentionDryRun"] = True
        if self.uploads_busy:
            out["uploadsBusy"] = self.uploads_busy
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def _pushed(blobs: dict[str, StoredFile], pushes: dict[str, float]) -> dict[str, StoredFile]:
    """The blobs with each manifest's last push noted by the metadata store as its time
    (push time for retention, age for the delays) where it is later than the file's."""
    for digest, at in pushes.items():
        blob = blobs.get(digest)
        if blob is not None and at > blob.written:
            blobs[digest] = dataclasses.replace(blob, stamp=max(blob.stamp, at), written=at)
    return blobs


class GarbageCollector:
    def __init__(
        self,
        store: ImageStore,
        delay: float,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        retention: RetentionSettings | None = None,
        pulls_complete: bool = True,
    ) -> None:
        """`pulls_complete`: whether the metadata store sees every pull of the repositories
        collected (False in a cluster whose members keep a store each)."""
        self.store = store
        self.driver = store.driver
        self.delay = delay
        self.dry_run = dry_run
        self.clock = clock
        self.retention = retention or RetentionSettings()
        self.manifest_delay = delay if self.retention.delay is None else self.retention.delay
        self.pulls_complete = pulls_complete
        # storage.subPaths: the collectors of the repositories a sub path takes (its gcDelay
        # and retention), by route (settings/subpaths.py)
        self.sub_paths: dict[str, GarbageCollector] = {}

    @classmethod
    def of(cls, store: ImageStore, config: Config, dry_run: bool = False) -> GarbageCollector:
        """The collector `config` describes (gcDelay, retention) for this store."""

        def made(delay: float, retention: RetentionSettings) -> GarbageCollector:
            return cls(
                store,
                delay,
                dry_run=dry_run,
                retention=retention,
                # Every member serves reads on shared storage: their pulls meet only in a
                # store they share (Redis, or the sqlite file beside one shared root).
                pulls_complete=config.cluster is None or store.meta_shared,
            )

        collector = made(config.storage.gc_delay, config.retention)
        collector.sub_paths = {s.route: made(s.gc_delay, s.retention) for s in config.sub_paths}
        return collector

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
        sub_path = self.sub_paths.get(route_of(repo) or "")
        if sub_path is not None:
            return await sub_path.collect(repo)
        report = GCReport(repo, self.dry_run, decided_only=self.retention.dry_run)
        cutoff = self.clock() - self.delay
        async with self.store.locks.repo(repo):
            await self._collect_content(repo, cutoff, report)
        # Upload sessions need no repository lock: each has its own, taken per session.
        await self._collect_uploads(repo, cutoff, report)
        if (
            report.manifests
            or report.tags
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
        temporaries: list[str] = []
        listed_blobs = await list_blobs(self.driver, repo, temporaries)
        blobs = _pushed(listed_blobs, await self.store.meta.pushes(repo))
        for path in temporaries:
            # A copy killed before its rename (storage/routed.py, storage/filesystem.py); a
            # live one is younger than gcDelay: it writes, or (on S3) renames at once, or (on
            # one disk) links the blob, whose inode keeps the blob's old mtime: the link's
            # time is the inode's change time (`renamed`).
            await self._remove_if_old(path, cutoff, report, linked=True)
        manifest_cutoff = self.clock() - self.manifest_delay
        policy = self.retention.policy(repo)
        dropped: dict[str, tuple[str, str]] = {}
        roots: set[str] = set()
        cache: dict[str, References | None] = {}  # each manifest read once per collection
        if policy is not None:
            dropped, roots = await self._retention(repo, policy, index, blobs)
        referrers_stay = policy is not None and not policy.delete_referrers
        kept, named, unreadable = await self._mark(
            index, blobs, manifest_cutoff, dropped, roots, referrers_stay, cache
        )
        if unreadable:
            # Whatever that manifest names is unknown, so nothing can be proven unreferenced.
            report.skipped = f"kept manifest cannot be read: {unreadable}"
            report.bytes_kept = sum(b.size for b in blobs.values())
            return
        report.tags = sorted(dropped)
        report.manifests = [d for d in index.digests() if d not in kept]
        if self.retention.dry_run and (report.tags or report.manifests):
            # zot's dry run leaves index.json as it is: collect only what no entry names.
            kept, named, unreadable = await self._mark(
                index, blobs, manifest_cutoff, {}, set(index.digests()), False, cache
            )
            if unreadable:
                report.skipped = f"listed manifest cannot be read: {unreadable}"
                report.blobs, report.bytes_freed = [], 0
                report.bytes_kept = sum(b.size for b in blobs.values())
                self._log_decisions(repo, dropped, report)
                return
        self._log_decisions(repo, dropped, report)
        doomed = [
            b for d, b in blobs.items() if d not in kept and d not in named and b.stamp <= cutoff
        ]
        report.blobs = sorted(b.name for b in doomed)
        report.bytes_freed = sum(b.size for b in doomed)
        report.bytes_kept = sum(b.size for b in blobs.values()) - report.bytes_freed
        if self.dry_run:
            return  # `ocireg gc --dry-run`: nothing changes
        if (report.manifests or dropped) and not self.retention.dry_run:
            gone = set(report.manifests)

            def goes(desc: dict[str, Any]) -> bool:
                if tag_of(desc) is not None:  # only as decided: a tag moved meanwhile stays
                    return _removed_tag(desc, dropped)
                return desc.get("digest") in gone and not is_kept(desc)

            def change(idx: Index) -> Index:
                idx.manifests = [d for d in idx.manifests if not goes(d)]
                return idx

            listed = set((await self.store.indexes.update(repo, change)).digests())
            for tag in dropped:
                await self.store.search.removed(repo, tag, True)
        else:
            listed = set(index.digests())
        # The notes of manifests no longer listed (removed now, or deleted by a client since
        # the last run). Under the lock: a push of one of them waits for us.
        await self.store.meta.forget_manifests(repo, listed)
        for blob in doomed:
            # zot's dedupe stubs elsewhere may stand for these bytes: they keep them.
            await self.store.blobs.before_delete(repo, Digest.parse(blob.name), blob.size)
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(blob.path)

    async def _retention(
        self,
        repo: str,
        policy: RetentionPolicy,
        index: Index,
        blobs: dict[str, StoredFile],
    ) -> tuple[dict[str, tuple[str, str]], set[str]]:
        """The tags the policy removes (tag -> (digest, reason)), and the untagged manifests
        it keeps whatever their age. As in zot, `keepUntagged` ranks every untagged entry,
        referrers and an index's children included (they stay with their index anyway)."""
        entries = index.manifests
        tags = [(t, d["digest"]) for d in entries if (t := tag_of(d)) and "digest" in d]
        untagged = [d["digest"] for d in entries if "digest" in d and not tag_of(d)]
        needs_pulls = policy.on_pulls and self.pulls_complete
        times = Times(
            now=self.clock(),
            pushed={d: blobs[d].written for d in {*(d for _, d in tags), *untagged} if d in blobs},
            pulled=await self.store.meta.pulls(repo) if needs_pulls else {},
            watched_since=await self.store.meta.pulls_since() if needs_pulls else None,
            pulls_complete=self.pulls_complete,
        )
        if not policy.delete_untagged:
            return dropped_tags(policy, tags, times), set(untagged)
        return dropped_tags(policy, tags, times), kept_untagged(policy, untagged, times)

    def _log_decisions(
        self, repo: str, dropped: dict[str, tuple[str, str]], report: GCReport
    ) -> None:
        """Each tag the policy removes in the log; in the audit log (`log.audit`) too, with
        each manifest collection removes, as zot writes both there (not for a
        `--dry-run` of the command, which only says what would go)."""
        audit = None if report.dry_run else audit_log()
        dry = report.dry_run or report.decided_only
        for tag, (digest, reason) in sorted(dropped.items()):
            decision = {"repository": repo, "tag": tag, "digest": digest, "reason": reason}
            log.info("retention: tag removed", extra={**decision, "dryRun": dry})
            if audit is not None:
                audit.info("retention: tag removed", extra={**decision, "dryRun": dry})
        if audit is not None:
            for digest in report.manifests:
                audit.info(
                    "gc: manifest removed",
                    extra={"repository": repo, "digest": digest, "dryRun": dry},
                )

    async def _mark(
        self,
        index: Index,
        blobs: dict[str, StoredFile],
        cutoff: float,
        dropped: dict[str, tuple[str, str]],
        roots: set[str],
        referrers_stay: bool,
        cache: dict[str, References | None],
    ) -> tuple[set[str], set[str], str | None]:
        """(kept manifests, digests they name, a kept manifest we could not read). Kept
        first: tagged manifests (but the `dropped` tags), young ones, `roots`, and every
        referrer when `referrers_stay` (then a referrer names its subject without keeping
        what the subject names)."""
        entries = index.digests()
        by_subject: dict[str, list[str]] = {}
        for digest in entries:
            refs = await self._references(blobs.get(digest), cache)
            if refs is not None and refs.subject:
                by_subject.setdefault(refs.subject, []).append(digest)
        tagged = {
            d["digest"]
            for d in index.manifests
            if "digest" in d and (is_kept(d) or (tag_of(d) and not _removed_tag(d, dropped)))
        }
        # An entry whose blob is gone is left for scrub to report, not silently dropped.
        young = {d for d in entries if d not in blobs or blobs[d].stamp > cutoff}
        stack = list(tagged | young | roots)
        if referrers_stay:
            stack.extend(d for referrers in by_subject.values() for d in referrers)
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
            if referrers_stay and refs.subject:
                # As in zot: a referrer that stays keeps its subject's manifest blob, not the
                # image (its config and layers go unless something else keeps them).
                stack.extend(refs.manifests - {refs.subject})
            else:
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
        """Dot files older than gcDelay that a process killed in the middle of its work
        left, which no session listing takes: a sync copy's marker beside the sessions
        (`sync/copier.py`), and the temporary file of an index.json write in the
        repository's directory (storage/filesystem.py). They are written on local storage
        only, so S3 is not listed for them. Nothing waits on a marker: a live copy's marker
        only tells the other worker processes which session to follow, and they wait for its
        lock without it. An index.json write holds the repository lock until its file is
        renamed: those files are removed under that lock, never waited for (a repository
        being written is looked at again by the next run)."""
        if self.driver.local_path(layout.index(repo)) is None:
            return
        await self._remove_old(layout.uploads_dir(repo), lambda name: True, cutoff, report)
        index_temp = f".{layout.INDEX_FILE}."
        try:
            async with self.store.locks.repo(repo, wait=False):
                await self._remove_old(
                    repo,
                    lambda name: name.startswith(index_temp) and name.endswith(".tmp"),
                    cutoff,
                    report,
                )
        except LockBusy:
            pass

    async def _remove_old(
        self, directory: str, wanted: Callable[[str], bool], cutoff: float, report: GCReport
    ) -> None:
        """The dot files of `directory` that `wanted` names, older than `cutoff`."""
        try:
            names = await self.driver.list(directory)
        except PathNotFound:
            return
        for name in names:
            if name.startswith(".") and not name.endswith("/") and wanted(name):
                await self._remove_if_old(f"{directory}/{name}", cutoff, report)

    async def _remove_if_old(
        self, path: str, cutoff: float, report: GCReport, linked: bool = False
    ) -> None:
        """A leftover file, if older than `cutoff` (with `linked`, its inode's last change
        too: a hard link made now); reported with the upload sessions."""
        with contextlib.suppress(PathNotFound):  # removed meanwhile (its work ended)
            info = await self.driver.stat(path)
            if (max(info.mtime, info.renamed) if linked else info.mtime) > cutoff:
                return
            if not self.dry_run:
                await self.driver.delete(path)
            report.uploads.append(path.rpartition("/")[2])


def _removed_tag(desc: dict[str, Any], dropped: dict[str, tuple[str, str]]) -> bool:
    """Whether `desc` is a tag the retention policy removes, on the manifest it decided on."""
    tag = tag_of(desc)
    return tag is not None and dropped.get(tag, ("",))[0] == desc.get("digest")
