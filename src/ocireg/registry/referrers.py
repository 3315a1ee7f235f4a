"""Referrers: the manifests whose `subject` is a given manifest, recorded in the metadata
store by the write path, found for manifests that reached index.json another way (a zot
member, a layout copied in), and rebuilt from storage (`ocireg rebuild-meta`, or an empty
store found at start-up). index.json has the last word: the store only saves reading every
manifest of a repository."""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from ocireg import jsondoc
from ocireg.digest import Digest
from ocireg.errors import RegistryError
from ocireg.logs import Progress
from ocireg.meta import MetaStore
from ocireg.ordered import ordered
from ocireg.registry.blobs import BlobStore
from ocireg.registry.index import Index, IndexCache
from ocireg.registry.manifests import INDEX_TYPES, Manifest, parse_stored
from ocireg.registry.rebuilds import BackgroundRebuild

log = logging.getLogger("ocireg.registry")
PARSED_KEPT = 20000  # manifest summaries kept per process


class Referrers:
    def __init__(
        self,
        meta: MetaStore,
        blobs: BlobStore,
        indexes: IndexCache,
        repositories: Callable[[], AsyncIterator[str]],
    ) -> None:
        self.meta = meta
        self.blobs = blobs
        self.indexes = indexes
        self.repositories = repositories
        self._rebuild = BackgroundRebuild(
            "metadata store", meta.ready, meta.try_rebuild_lock, self.rebuild
        )
        # Manifests are immutable by digest: keep their parsed summaries.
        self._parsed: OrderedDict[str, Manifest | None] = OrderedDict()
        # The index object last checked for manifests the metadata store has not seen (an
        # index is replaced, never changed, when the file changes: identity is a version).
        self._scanned_at: weakref.WeakValueDictionary[str, Index] = weakref.WeakValueDictionary()

    async def pushed(self, repo: str, desc: dict[str, Any], manifest: Manifest) -> None:
        """Before the manifest enters index.json: if the store is down the push fails and is
        retried; an entry whose manifest never made it into index.json is filtered out on
        reads."""
        self.remember(desc["digest"], manifest)
        if manifest.subject is not None:
            descriptor = referrer_descriptor(desc, manifest)
            await self.meta.add_referrer(repo, str(manifest.subject), descriptor)
        await self.meta.mark_scanned(repo, [desc["digest"]])

    async def deleted(self, repo: str, desc: dict[str, Any], summary: Manifest | None) -> None:
        if summary is not None and summary.subject is not None:
            await self.meta.remove_referrer(repo, str(summary.subject), desc["digest"])

    async def of(self, repo: str, subject: Digest) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose `subject` is `subject`, plus those listed in an
        index tagged with the fallback tag schema `<alg>-<hex>`."""
        index = await self.indexes.load(repo)
        if index is None:
            return []
        found: dict[str, dict[str, Any]] = {}
        if await self.meta.ready():
            await self._scan_new(repo, index)
            # The store may hold referrers deleted since: index.json has the last word.
            for desc in await self.meta.referrers(repo, str(subject)):
                if index.by_digest(desc["digest"]) is not None:
                    found[desc["digest"]] = desc
        else:
            self.kick_rebuild()  # an empty store (new or flushed): refill it meanwhile
            for desc in index.manifests:
                digest = desc.get("digest")
                if not isinstance(digest, str) or digest in found:
                    continue
                manifest = await self.summary(repo, desc)
                if manifest is None or manifest.subject != subject:
                    continue
                found[digest] = referrer_descriptor(desc, manifest)
        fallback = index.by_tag(f"{subject.algorithm}-{subject.hex}")
        if fallback is not None and fallback.get("mediaType") in INDEX_TYPES:
            try:
                body = await self.blobs.get_small(repo, Digest.parse(fallback["digest"]))
                for entry in jsondoc.loads(body).get("manifests", []):
                    if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                        found.setdefault(entry["digest"], entry)
            except (RegistryError, ValueError, AttributeError):
                pass
        return list(found.values())

    def kick_rebuild(self) -> None:
        """Rebuild the metadata store in the background if it is empty and nobody else is
        (requests fall back to storage meanwhile)."""
        self._rebuild.kick()

    async def rebuild(self, at_once: int = 1) -> int:
        """Refill the metadata store from storage, `at_once` repositories at a time;
        returns the referrers found."""
        await self.meta.clear()
        progress = Progress(log, "rebuild-meta")
        count = 0
        async for repo, found in ordered(self.repositories(), self._refill, at_once):
            count += found
            progress.step(repo)
        await self.meta.mark_ready()
        progress.finish()
        return count

    async def _refill(self, repo: str) -> int:
        """The metadata store's records of one repository; returns its referrers."""
        count = 0
        index = await self.indexes.load(repo)
        for desc in index.manifests if index is not None else []:
            manifest = await self.summary(repo, desc)
            if manifest is not None and manifest.subject is not None:
                descriptor = referrer_descriptor(desc, manifest)
                await self.meta.add_referrer(repo, str(manifest.subject), descriptor)
                count += 1
        if index is not None:
            await self.meta.mark_scanned(repo, index.digests())
        await self.meta.add_repository(repo)
        return count

    async def _scan_new(self, repo: str, index: Index) -> None:
        """Record the referrers of manifests that reached index.json without passing through
        this registry's write path (a zot member on the same storage, a layout copied in):
        each manifest is looked at once, then remembered in the metadata store."""
        if self._scanned_at.get(repo) is index:
            return  # this very index was checked already
        new = set(index.digests()) - await self.meta.scanned(repo)
        for digest in new:
            desc = index.by_digest(digest)
            manifest = None if desc is None else await self.summary(repo, desc)
            if desc is not None and manifest is not None and manifest.subject is not None:
                descriptor = referrer_descriptor(desc, manifest)
                await self.meta.add_referrer(repo, str(manifest.subject), descriptor)
        if new:
            await self.meta.mark_scanned(repo, sorted(new))
        self._scanned_at[repo] = index

    async def summary(self, repo: str, desc: dict[str, Any]) -> Manifest | None:
        digest = desc["digest"]
        if digest in self._parsed:
            self._parsed.move_to_end(digest)
            return self._parsed[digest]
        try:
            body = await self.blobs.get_small(repo, Digest.parse(digest))
        except RegistryError:
            return None
        manifest = parse_stored(body, desc.get("mediaType"))
        self.remember(digest, manifest)
        return manifest

    def remember(self, digest: str, manifest: Manifest | None) -> None:
        self._parsed[digest] = manifest
        while len(self._parsed) > PARSED_KEPT:
            self._parsed.popitem(last=False)


def referrer_descriptor(desc: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": desc["digest"],
        "size": desc.get("size"),
    }
    if manifest.artifact_type:
        out["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        out["annotations"] = manifest.annotations
    return out
