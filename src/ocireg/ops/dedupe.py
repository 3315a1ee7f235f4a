"""Dedupe of what is stored already, as zot does at start-up with `storage.dedupe` on local
disk: every blob of every repository that dedupes (its sub path's `dedupe`, else
`storage.dedupe`) is handed to the same step an upload takes (`BlobStore.stored`), which
turns a copy of bytes another repository holds into a hard link of that file, or notes this
one as the copy the next ones link to. So blobs written before dedupe was on, by a registry
that kept copies, or restored from a backup, come to be kept once.

Manifests are left alone, as on upload: each keeps a file of its own, whose time is its push
time in that repository (retention). A repository is worked on under its lock, so garbage
collection does not delete a blob while it is linked. The run is one pass over the
repositories this instance maintains, resumable like GC (`ops.runs`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ocireg.digest import Digest
from ocireg.ops.content import list_blobs
from ocireg.ops.runs import Checkpoint, each_repository, owns_everything
from ocireg.registry import ImageStore
from ocireg.storage import PathNotFound

log = logging.getLogger("ocireg.dedupe")


@dataclass
class DedupeReport:
    repository: str
    linked: int = 0  # blobs that became hard links of another repository's copy
    bytes_saved: int = 0


class Deduplicator:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.driver = store.driver

    def run(
        self, owns: Callable[[str], bool] = owns_everything, checkpoint: Checkpoint | None = None
    ) -> AsyncIterator[DedupeReport]:
        """Dedupe every repository that `owns` accepts, one report at a time (`ops.runs`)."""
        return each_repository(self.store, "dedupe", self.dedupe, owns, checkpoint, log)

    async def dedupe(self, repo: str) -> DedupeReport:
        report = DedupeReport(repo)
        if self.store.blobs.dedupe(repo) is None:
            return report
        async with self.store.locks.repo(repo):
            try:
                index = await self.store.indexes.load(repo)
            except ValueError:  # not valid JSON: which blobs are manifests is unknown
                return report
            manifests = set(index.digests()) if index is not None else set()
            for digest, blob in (await list_blobs(self.driver, repo)).items():
                if digest not in manifests and await self._linked(repo, blob.path, digest):
                    report.linked += 1
                    report.bytes_saved += blob.size
        if report.linked:
            log.info(
                "dedupe",
                extra={"repository": repo, "linked": report.linked, "bytes": report.bytes_saved},
            )
        return report

    async def _linked(self, repo: str, path: str, digest: str) -> bool:
        """Whether the blob at `path` became another copy's hard link (its version, which
        names the file's inode on disk, changed)."""
        try:
            before = (await self.driver.stat(path)).version
            await self.store.blobs.stored(repo, Digest.parse(digest))
            return (await self.driver.stat(path)).version != before
        except PathNotFound:
            return False
