"""Scrub: re-hash every blob and re-check what every manifest in index.json references.

Problems are reported (one JSON object each), never repaired: deleting a corrupt blob would
turn a detectable problem into a silent one, and a re-push of the same bytes fixes it.
`extensions.scrub` (zot's keys, typed by `ocireg.settings.extensions` into `config.scrub`):
`enable` (true when the section is present), `interval` (default 24h; zot raises anything
under 2h to 2h, ocireg honours the value given).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ocireg import names
from ocireg.digest import ALGORITHMS, Digest, new_hasher
from ocireg.errors import RegistryError
from ocireg.ops.content import StoredFile, list_blobs, list_dir, read_manifest
from ocireg.ops.runs import Checkpoint, each_repository, owns_everything
from ocireg.registry import ImageStore, layout
from ocireg.registry.index import tag_of
from ocireg.registry.manifests import parse_stored
from ocireg.storage import PathNotFound

log = logging.getLogger("ocireg.scrub")
HASH_PIECE = 1 << 20


@dataclass
class ScrubReport:
    repository: str
    blobs: int = 0
    bytes: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, kind: str, **detail: Any) -> None:
        self.problems.append({"repository": self.repository, "problem": kind, **detail})


class Scrubber:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.driver = store.driver

    def run(
        self,
        owns: Callable[[str], bool] = owns_everything,
        checkpoint: Checkpoint | None = None,
        at_once: int = 1,
    ) -> AsyncIterator[ScrubReport]:
        """Scrub every repository that `owns` accepts, one report at a time (`ops.runs`)."""
        return each_repository(
            self.store, "scrub", self.scrub, owns, checkpoint, log, at_once=at_once
        )

    async def scrub(self, repo: str) -> ScrubReport:
        report = ScrubReport(repo)
        await self._layout_collisions(repo, report)
        blobs = await list_blobs(self.driver, repo)
        corrupt: set[str] = set()
        for digest, blob in sorted(blobs.items()):
            actual = await self._hash(blob, Digest.parse(digest).algorithm)
            report.blobs += 1
            report.bytes += blob.size
            if actual is None:
                corrupt.add(digest)
                report.problem("blob_unreadable", blob=digest)
            elif actual != digest:
                corrupt.add(digest)
                report.problem("blob_digest_mismatch", blob=digest, actual=actual)
        try:
            index = await self.store.indexes.load(repo)
        except ValueError as exc:
            report.problem("index_invalid", error=str(exc))
            return self._logged(report)
        if index is None:
            report.problem("index_missing")
            return self._logged(report)
        # Tagged entries first, one shared `seen`: each manifest is reported once, under the
        # tag that reaches it when there is one.
        seen: set[str] = set()
        for desc in sorted(index.manifests, key=lambda d: tag_of(d) is None):
            entry = desc.get("digest")
            if isinstance(entry, str):
                await self._check(repo, entry, tag_of(desc), blobs, corrupt, report, seen)
        return self._logged(report)

    async def _check(
        self,
        repo: str,
        digest: str,
        tag: str | None,
        blobs: dict[str, StoredFile],
        corrupt: set[str],
        report: ScrubReport,
        seen: set[str],
    ) -> None:
        """Check one manifest and, for an index, its children; `tag` names the entry."""
        if digest in seen:
            return
        seen.add(digest)
        where = {"manifest": digest, "tag": tag}
        blob = blobs.get(digest)
        if blob is None:
            report.problem("manifest_missing", **where)
            return
        if digest in corrupt:
            report.problem("manifest_corrupt", **where)
            return
        body = await read_manifest(self.driver, blob)
        manifest = None if body is None else parse_stored(body, None)
        if manifest is None:
            report.problem("manifest_invalid", **where)
            return
        for ref in manifest.blobs:
            name = str(ref)
            if name not in blobs:
                report.problem("blob_missing", blob=name, **where)
            elif name in corrupt:
                report.problem("blob_corrupt", blob=name, **where)
        for child in manifest.children:
            await self._check(repo, str(child), tag, blobs, corrupt, report, seen)
        # A missing subject is not a problem: the spec lets referrers arrive before it.

    async def _layout_collisions(self, repo: str, report: ScrubReport) -> None:
        """What older versions let a repository name put inside another repository's layout
        (`x/blobs/...`, `x/index.json`): reported, never touched, since it may hold images
        someone still wants; copy them to a valid name, then delete the directory by hand."""
        try:
            names.validate_name(repo)
        except RegistryError:
            report.problem("name_reserved", reserved=sorted(names.RESERVED_COMPONENTS))
        blobs_dir = layout.blobs_dir(repo)
        for entry in await list_dir(self.driver, blobs_dir):
            algorithm = entry.removesuffix("/")
            if entry.endswith("/") and algorithm in ALGORITHMS:
                for name in await list_dir(self.driver, f"{blobs_dir}/{algorithm}"):
                    if name.endswith("/"):
                        report.problem("layout_collision", path=f"{blobs_dir}/{algorithm}/{name}")
            elif entry.endswith("/") or entry in (layout.INDEX_FILE, layout.OCI_LAYOUT_FILE):
                report.problem("layout_collision", path=f"{blobs_dir}/{entry}")

    async def _hash(self, blob: StoredFile, algorithm: str) -> str | None:
        hasher = new_hasher(algorithm)
        try:
            async for chunk in self.driver.reader(blob.path):
                # Off the event loop: a scrub runs inside a serving worker.
                await asyncio.to_thread(hasher.update, chunk)
        except (PathNotFound, OSError):
            return None
        return f"{algorithm}:{hasher.hexdigest()}"

    @staticmethod
    def _logged(report: ScrubReport) -> ScrubReport:
        for problem in report.problems:
            log.warning("scrub problem", extra=problem)
        return report
