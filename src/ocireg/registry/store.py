"""The image store: the distribution-spec semantics over a storage driver, free of HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocireg import jsondoc, names
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.events import Recorder
from ocireg.meta import MetaStore, MetaUnavailable
from ocireg.ordered import ordered
from ocireg.registry import lint
from ocireg.registry.blobs import BlobStore
from ocireg.registry.faults import boundary
from ocireg.registry.index import (
    KEEP,
    AddUntagged,
    Index,
    IndexCache,
    IndexChange,
    RemoveDigest,
    RemoveTag,
    SetTag,
)
from ocireg.registry.locks import LocalLocks
from ocireg.registry.manifests import INDEX_TYPES, OCI_INDEX, Manifest, parse_manifest
from ocireg.registry.pulls import PullLog
from ocireg.registry.quota import RepoQuota
from ocireg.registry.referrers import Referrers
from ocireg.registry.repos import LIST_AHEAD, Repositories
from ocireg.registry.search import Search
from ocireg.registry.uploads import Uploads
from ocireg.registry.writer import IndexWriter, Prepare
from ocireg.storage import SessionStore, StorageDriver

log = logging.getLogger("ocireg.registry")
RUNS_AT_ONCE = 8
CHECKS_AT_ONCE = 8  # a manifest's blobs looked for at once on remote storage
CATALOG_RECONCILE = 600.0  # seconds between walks that add repositories others created


@dataclass(frozen=True)
class StoredManifest:
    body: bytes
    media_type: str
    digest: Digest


@dataclass(frozen=True)
class PutResult:
    digest: Digest
    subject: Digest | None


@boundary
class ImageStore:
    def __init__(
        self,
        driver: StorageDriver,
        sessions: SessionStore,
        lock_dir: Path,
        meta: MetaStore,
        zot_root: str = "",
        search: bool = False,
        dedupe: bool | Callable[[str], str | None] = False,
        mandatory_annotations: tuple[str, ...] = (),
    ) -> None:
        self.driver = driver
        self.sessions = sessions
        self.mandatory_annotations = mandatory_annotations  # extensions.lint (registry/lint.py)
        self.meta = meta
        self.locks = LocalLocks(lock_dir)
        remote = driver.local_path("x") is None  # S3: every look at storage is a round trip
        self.repos = Repositories(driver, self.locks, meta, list_ahead=LIST_AHEAD if remote else 1)

        # zot's dedupe on local storage: hard links (on S3 zot writes stubs, ocireg does not)
        def area(repo: str) -> str | None:  # BlobStore.dedupe
            if callable(dedupe):  # per repository (storage.subPaths: roots of both kinds)
                return dedupe(repo)
            return "" if dedupe and not remote else None

        self.blobs = BlobStore(driver, self.repos, meta, zot_root, area)
        self.uploads = Uploads(sessions, self.locks, self.repos, stored=self.blobs.stored)
        # On S3 with Redis the current index.json version is kept in the store, so reads
        # need no request to the bucket (registry/versions.py); on a local disk `stat` is
        # cheap, and a zot writing the same directory would not keep the key.
        # Repositories the maintenance commands work on at once: on remote storage each is
        # many round trips, which a few at once overlap (ocireg/ordered.py).
        self.at_once = RUNS_AT_ONCE if remote else 1
        # A manifest put looks for its blobs under the repository lock: on S3 one HEAD each,
        # sent a few at once; on disk a `stat` each, one after another.
        self._checks_at_once = CHECKS_AT_ONCE if remote else 1
        # On S3 writing a manifest costs the one request that looking for it would.
        self._look_before_storing = not remote
        self.indexes = IndexCache(driver, meta, keep_versions=remote and meta.name == "redis")
        self.writer = IndexWriter(self.indexes, self.locks)
        # zot's extensions.events: what happened, sent to the sinks (none until the server
        # gives them)
        self.events = Recorder()
        self.repos.created = lambda repo: self.events.repository_created(repo)
        # zot's storage.maxRepos, for the API's manifest pushes (off until the server sets it)
        self.quota = RepoQuota(self.locks, self.indexes, meta, self.repositories)
        self.writer.adopt = self._adopt
        self._referrers = Referrers(meta, self.blobs, self.indexes, self.repositories)
        # What the stored image indexes of a repository list (`_nested`), per index object:
        # an index is replaced, never changed, when the file changes, so its identity is a
        # version. Clients HEAD a digest before they push it, and each such look used to read
        # and parse every image index of the repository (71 ms at 2,000 of them).
        self._inside: weakref.WeakKeyDictionary[Index, dict[str, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        # The search index (extensions.search): maintained only while search is enabled.
        self.search = Search(meta, self.blobs, self.indexes, self.repositories, search)
        self.search.only_ocireg_writes = lambda: self.only_ocireg_writes()
        # Manifest pulls noted for retention's rules on pulls (set by the server; the
        # commands, which serve no pulls, leave it None).
        self.pulls: PullLog | None = None
        # The catalog index is used where every writer of this storage writes it too: a
        # shared Redis, or sqlite beside a local root (members on one root share it).
        self.meta_shared = meta.name == "redis" or not remote
        # Whether every other writer of this storage keeps the catalog index too (the server
        # sets it in a cluster: no zot member, no member unknown yet).
        self.only_ocireg_writes: Callable[[], bool] = lambda: True
        self._reconciled: float | None = None  # monotonic time of the last catalog walk
        self._reconciling: asyncio.Task[None] | None = None
        # Which directories hold which repositories (`storage.subPaths`; "" without sub
        # paths), set by the server: the metadata store's records hold for that one only.
        self.storage_layout = ""

    async def close(self) -> None:
        await self.events.close()
        await self.writer.close()
        await self.driver.close()
        await self.meta.close()

    # --- manifests ----------------------------------------------------------------------

    async def _index(self, repo: str) -> Index:
        index = await self.indexes.load(repo)
        if index is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repo})
        return index

    async def resolve(self, repo: str, reference: str) -> dict[str, Any]:
        """The index.json descriptor that `reference` (tag or digest) names."""
        index = await self.indexes.load(repo)
        if index is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"name": repo})
        if names.reads_as_tag(reference):
            desc = index.by_tag(reference)
        else:
            desc = index.by_digest(reference) or await self._nested(repo, index, reference)
        if desc is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference})
        return desc

    async def _nested(self, repo: str, index: Index, digest: str) -> dict[str, Any] | None:
        """A manifest listed only inside a stored image index. Layouts written by tools
        (skopeo, umoci, zot's sync) name just the index in index.json, not its children.
        The indexes are read once per version of index.json (`_inside`)."""
        inside = self._inside.get(index)
        if inside is None:
            inside = {}
            await self._gather_inside(repo, index, inside)
            self._inside[index] = inside
        return inside.get(digest)

    async def _gather_inside(
        self, repo: str, index: Index, found: dict[str, dict[str, Any]], depth: int = 2
    ) -> None:
        """Into `found`, the descriptors the image indexes `index` lists name, and (`depth`)
        those of the indexes they name; the first of a digest kept, in the order a search
        would meet them."""
        for desc in index.manifests:
            digest = desc.get("digest")
            if desc.get("mediaType") not in INDEX_TYPES or not isinstance(digest, str):
                continue
            if not Digest.is_valid(digest):
                continue
            try:
                children = Index.parse(await self.blobs.get_small(repo, Digest.parse(digest)))
            except RegistryError as exc:
                if exc.code is not ErrorCode.BLOB_UNKNOWN:
                    raise  # storage down: 503, not a manifest that is not there
                continue
            except ValueError:
                continue
            for child in children.manifests:
                if isinstance(child.get("digest"), str):
                    found.setdefault(child["digest"], child)
            if depth > 1:
                await self._gather_inside(repo, children, found, depth - 1)

    async def get_manifest(self, repo: str, reference: str) -> StoredManifest:
        desc = await self.resolve(repo, reference)
        digest = Digest.parse(desc["digest"])
        try:
            body = await self.blobs.get_small(repo, digest)
        except RegistryError as exc:
            if exc.code is not ErrorCode.BLOB_UNKNOWN:
                raise  # storage down: 503, not a manifest that does not exist
            raise RegistryError(
                ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference}
            ) from None
        media_type = desc.get("mediaType") or _sniff_media_type(body)
        return StoredManifest(body, media_type, digest)

    async def put_manifest(
        self,
        repo: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        keep: str | None = None,
        by: str = "",
    ) -> PutResult:
        """Store a manifest under a tag or its digest. `keep` (why), for one stored by
        digest: garbage collection keeps it although it has no tag (index.KEEP). `by`: the
        user who pushed it ("": anonymous), which the search index notes."""
        # Counted from here: a write to the same index in progress may wait for this one.
        with self.writer.coming(repo) as arrived:
            return await self._put_manifest(repo, reference, body, content_type, keep, by, arrived)

    async def _put_manifest(
        self,
        repo: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        keep: str | None,
        by: str,
        arrived: Callable[[], None],
    ) -> PutResult:
        tag: str | None = None
        if names.is_tag(reference):
            tag = reference
            digest = Digest.of(body)
        elif ":" not in reference:  # meant as a tag, but not one the grammar allows
            raise RegistryError(ErrorCode.MANIFEST_INVALID, "invalid tag", {"tag": reference[:200]})
        else:
            expected = Digest.parse(reference)
            digest = Digest.of(body, expected.algorithm)
            if digest != expected:
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    "manifest digest does not match the reference",
                    {"expected": str(expected), "actual": str(digest)},
                )
        manifest = parse_manifest(body, content_type)
        await self.repos.ensure(repo)
        # A first look, from what this process saw lately: `prepare` checks again.
        await self._check_references(repo, manifest, functools.partial(self.blobs.seen, repo))
        # Whether this put changes index.json: zot lints and sends an event only then.
        changes = not (self.mandatory_annotations or self.events.enabled) or not (
            await self.indexes.points(repo, tag, str(digest))
        )
        if self.mandatory_annotations and lint.applies(manifest, tag) and changes:
            read = functools.partial(self.blobs.get_small, repo)
            try:
                await lint.check(self.mandatory_annotations, manifest, digest, reference, read)
            except RegistryError:
                media_type = manifest.media_type
                self.events.image_lint_failed(repo, reference, str(digest), media_type, body)
                raise
        desc = _descriptor(manifest, digest, body, keep if tag is None else None)
        await self._referrers.pushed(repo, desc, manifest)
        # What the worker holding the repository's lock needs to make this same write
        # (registry/writer.py): `_adopt` there rebuilds it.
        portable = {
            "tag": tag,
            "digest": str(digest),
            "body": base64.b64encode(body).decode(),
            "type": content_type,
            "keep": keep,
        }
        change, prepare = self._index_write(repo, tag, desc, manifest, body)
        await self.writer.write(repo, change, prepare, portable, arrived)
        await self.search.pushed(repo, tag, desc, body, manifest, by)
        if changes:
            self.events.image_updated(repo, reference, str(digest), manifest.media_type, body)
        return PutResult(digest, manifest.subject)

    def _index_write(
        self, repo: str, tag: str | None, desc: dict[str, Any], manifest: Manifest, body: bytes
    ) -> tuple[IndexChange, Prepare]:
        """The index change of a manifest put, and what to do under the lock before it."""
        digest = Digest.parse(desc["digest"])

        async def prepare(stored: set[str]) -> None:
            # Under the lock: garbage collection deletes unreferenced blobs under it, so a
            # blob seen above may be gone by now; after this check it stays. A manifest that
            # index.json lists already (another tag of it) needs no check: collection keeps
            # it and every blob it names, and `delete_blob` refuses it. `stored`: what the
            # other puts of this write found (registry/writer.py).
            if await self.indexes.lists(repo, str(digest)):
                await pushed_again(stored)
                return

            async def found(blob: Digest) -> bool:
                if str(blob) not in stored and await self.blobs.exists(repo, blob):
                    stored.add(str(blob))
                return str(blob) in stored

            await self._check_references(repo, manifest, found)
            # Content-addressed: a manifest stored already is not written again (replacing a
            # file costs a flush on ext4; docs/performance.md, "Tag writes"). On S3 the look
            # would cost what the write does.
            if not (self._look_before_storing and await found(digest)):
                await self.blobs.put_small(repo, digest, body)
                stored.add(str(digest))
            else:
                await pushed_again(stored)

        async def pushed_again(shared: set[str]) -> None:
            # A manifest stored already keeps its file, and the file's time (the push time
            # retention decides by, ops/gc.py) is its first push: this one is noted in the
            # metadata store, before index.json changes. Once per write that holds it.
            noted = f"pushed {digest}"  # beside the digests in the write's shared set
            if noted not in shared:
                shared.add(noted)
                await self.meta.record_push(repo, str(digest), time.time())

        return (SetTag(tag, desc) if tag is not None else AddUntagged(desc)), prepare

    def _adopt(self, repo: str, item: dict[str, Any]) -> tuple[IndexChange, Prepare]:
        """A manifest put that another worker handed to us, the lock's holder: the same
        change and checks as `put_manifest` made there, rebuilt from the manifest itself.
        Raises if the item is not one (then its own worker writes it)."""
        tag, content_type, keep = item.get("tag"), item.get("type"), item.get("keep")
        if not (tag is None or (isinstance(tag, str) and names.is_tag(tag))):
            raise ValueError("not a tag")
        if not (content_type is None or isinstance(content_type, str)):
            raise ValueError("not a media type")
        if not (keep is None or isinstance(keep, str)):
            raise ValueError("not a reason to keep")
        body = base64.b64decode(item["body"], validate=True)
        digest = Digest.parse(item["digest"])
        if Digest.of(body, digest.algorithm) != digest:
            raise ValueError("digest does not match")
        manifest = parse_manifest(body, content_type)
        desc = _descriptor(manifest, digest, body, keep if tag is None else None)
        return self._index_write(repo, tag, desc, manifest, body)

    async def _check_references(
        self, repo: str, manifest: Manifest, found: Callable[[Digest], Awaitable[bool]]
    ) -> None:
        """MANIFEST_BLOB_UNKNOWN unless every blob and child `manifest` names is `found`
        (a child may also be a manifest index.json lists)."""
        await self._all_found(manifest.blobs, found)
        if manifest.children:
            index = await self._index(repo)

            async def listed_or_found(child: Digest) -> bool:
                return index.by_digest(str(child)) is not None or await found(child)

            await self._all_found(manifest.children, listed_or_found)

    async def _all_found(
        self, digests: Iterable[Digest], found: Callable[[Digest], Awaitable[bool]]
    ) -> None:
        """MANIFEST_BLOB_UNKNOWN for the first of `digests` not `found`; a few looked for
        at once on remote storage (the rest are cancelled at the first missing)."""
        looks = ordered(digests, found, self._checks_at_once)
        async with contextlib.aclosing(looks):
            async for digest, present in looks:
                if not present:
                    raise RegistryError(
                        ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digest": str(digest)}
                    )

    async def delete_manifest(self, repo: str, reference: str) -> None:
        """By tag: remove the tag. By digest: remove the manifest and every tag on it."""
        desc = await self.resolve(repo, reference)
        is_tag = names.reads_as_tag(reference)
        summary = None if is_tag else await self._referrers.summary(repo, desc)

        if is_tag:
            found = await self.writer.write(repo, RemoveTag(reference))
        else:
            unnamed = functools.partial(self._unnamed, repo, desc["digest"])
            found = await self.writer.write(repo, RemoveDigest(reference), unnamed)
        if not found:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference})
        await self._referrers.deleted(repo, desc, summary)
        await self.search.removed(repo, reference if is_tag else desc["digest"], is_tag)
        self.events.image_deleted(repo, reference, desc["digest"], desc.get("mediaType", ""))

    async def _unnamed(self, repo: str, digest: str, stored: set[str]) -> None:
        """Before a manifest is deleted by digest, under the lock: refused, as zot refuses
        it, while an image index of the repository (listed in index.json, or inside one
        listed) names it. The delete could not do what it says: the index keeps the manifest
        readable by digest, and garbage collection keeps it. (An index put in the same write
        may name it still: both are accepted, as if the delete had come first.)"""
        index = await self.indexes.load(repo)
        if index is not None and await self._nested(repo, index, digest) is not None:
            raise RegistryError(ErrorCode.MANIFEST_REFERENCED, detail={"digest": digest})

    async def delete_blob(self, repo: str, digest: Digest) -> None:
        """end-10, refused (as zot refuses it) for a blob the repository's images need: one
        of its manifests (listed in index.json or inside one of its indexes; DELETE the
        manifest instead), or a config or layer one of them names. Checked and deleted under
        the repository lock, which a manifest put's check of its blobs takes too."""
        text = str(digest)
        async with self.locks.repo(repo):
            index = await self.indexes.load(repo)
            if index is not None and (
                index.by_digest(text) is not None or await self._needs_blob(repo, index, text)
            ):
                raise RegistryError(ErrorCode.BLOB_REFERENCED, detail={"digest": text})
            await self.blobs.delete(repo, digest)

    async def _needs_blob(self, repo: str, index: Index, digest: str) -> bool:
        """Whether `digest` is a manifest of the repository, listed in index.json or a child
        of a listed index at any depth, or the config or a layer one of them names. Each
        manifest is read once and leniently (what it names, not whether a push would take it
        today); one that is missing names nothing, one that is not JSON may name anything
        (True), and a storage error is raised: the delete must not go ahead on a read that
        failed."""
        seen: set[str] = set()
        todo = list(index.manifests)
        while todo:
            found = todo.pop().get("digest")
            if found == digest:
                return True
            if not isinstance(found, str) or found in seen or not Digest.is_valid(found):
                continue
            seen.add(found)
            try:
                doc = jsondoc.loads(await self.blobs.get_small(repo, Digest.parse(found)))
            except RegistryError as exc:
                if exc.code is ErrorCode.BLOB_UNKNOWN:
                    continue
                raise
            except ValueError:
                return True
            if not isinstance(doc, dict):
                return True
            config, layers = doc.get("config"), doc.get("layers")
            named = [config] + (layers if isinstance(layers, list) else [])
            if any(isinstance(d, dict) and d.get("digest") == digest for d in named):
                return True
            children = doc.get("manifests")
            if isinstance(children, list):
                todo.extend(d for d in children if isinstance(d, dict))
        return False

    # --- tags, catalog, referrers ----------------------------------------------------------

    async def tags(self, repo: str) -> list[str]:
        return (await self._index(repo)).tags()

    async def catalog_page(
        self, last: str | None, limit: int | None, visible: Callable[[str], bool] | None = None
    ) -> tuple[list[str], bool]:
        """One page of `/v2/_catalog`: from the metadata store's catalog index once it is
        built, else (a new or flushed store, being rebuilt) from a walk of the storage.

        The index sees the repositories this registry creates. Ones another writer created
        on the same storage (a layout copied in, a zot member while it ran alone) are added
        by a walk of the storage that each process makes before its first catalog page and
        then every CATALOG_RECONCILE seconds, in the background; `ocireg rebuild-meta` adds
        them at once. While a cluster has a member that is not an ocireg (or not known yet),
        pages come from a walk: that member does not keep the index.
        """
        if self.meta_shared and self.only_ocireg_writes() and await self.meta.ready():
            await self._reconcile_catalog()
            return await self.repos.page(last, limit, visible)
        self.kick_rebuild()
        names = [
            name
            for name in await self.catalog()
            if (not last or name > last) and (visible is None or visible(name))
        ]
        if limit is None:
            return names, False
        return names[:limit], len(names) > limit

    async def _reconcile_catalog(self) -> None:
        now = time.monotonic()
        if self._reconciled is None:  # first page of this process: the walk comes first
            self._reconciled = now
            await self._add_walked_repositories()
        elif now - self._reconciled > CATALOG_RECONCILE and self._reconciling is None:
            self._reconciled = now
            self._reconciling = asyncio.create_task(self._add_walked_repositories())
            self._reconciling.add_done_callback(self._reconciled_in_background)

    async def _add_walked_repositories(self) -> None:
        for repo in await self.catalog():
            await self.meta.add_repository(repo)

    def _reconciled_in_background(self, task: asyncio.Task[None]) -> None:
        self._reconciling = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("catalog reconcile failed", extra={"error": str(task.exception())})

    async def catalog(self) -> list[str]:
        return await self.repos.catalog()

    def repositories(self, after: str = "") -> AsyncIterator[str]:
        """Every repository, one at a time (`Repositories.walk`): for runs over all of them."""
        return self.repos.walk(after)

    async def referrers(self, repo: str, subject: Digest) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose `subject` is `subject`, plus those listed in an
        index tagged with the fallback tag schema `<alg>-<hex>` (`registry/referrers.py`)."""
        return await self._referrers.of(repo, subject)

    async def check_storage_layout(self) -> bool:
        """Note this start's `storage_layout` in the metadata store. When it differs from the
        one the store's records were made under (sub paths added, removed or moved), the
        records (the catalog index above all) name repositories where they no longer are:
        empty the store, and the search index, for `kick_rebuild` to refill them. Whether it
        did. Without sub paths now and no layout noted before (a store from before layouts
        were noted), nothing is emptied."""
        try:
            before = await self.meta.swap_storage_layout(self.storage_layout)
        except MetaUnavailable as exc:  # the store's start-up check says more
            log.warning("storage layout not checked", extra={"error": str(exc)})
            return False
        if before == self.storage_layout or (before is None and not self.storage_layout):
            return False
        log.info(
            "storage.subPaths changed: the metadata store is rebuilt from storage",
            extra={"before": before, "now": self.storage_layout},
        )
        try:
            await self.meta.clear()
            await self.meta.search_reset(mark_ready=False)
        except MetaUnavailable as exc:
            # Not emptied: the old layout is noted again, so that the next start tries again.
            log.warning("metadata store not emptied", extra={"error": str(exc)})
            with contextlib.suppress(MetaUnavailable):
                await self.meta.swap_storage_layout(before or "")
            return False
        return True

    def kick_rebuild(self) -> None:
        """Rebuild the metadata store in the background if it is empty and nobody else is."""
        self._referrers.kick_rebuild()
        self.search.kick_rebuild()

    async def rebuild_meta(self, at_once: int = 1) -> int:
        """Refill the metadata store from storage (the search index too, when search is
        enabled), `at_once` repositories at a time; returns the referrers found."""
        count = await self._referrers.rebuild(at_once)
        if self.search.enabled:
            await self.search.rebuild()
        await self.meta.swap_storage_layout(self.storage_layout)
        return count


def _descriptor(
    manifest: Manifest, digest: Digest, body: bytes, keep: str | None = None
) -> dict[str, Any]:
    """The manifest's index.json entry; `keep`: why GC keeps it untagged (index.KEEP)."""
    desc: dict[str, Any] = {"mediaType": manifest.media_type, "digest": str(digest)}
    desc["size"] = len(body)
    if manifest.declared_artifact_type:
        desc["artifactType"] = manifest.declared_artifact_type
    if keep is not None:
        desc["annotations"] = {KEEP: keep}
    return desc


def _sniff_media_type(body: bytes) -> str:
    try:
        doc = jsondoc.loads(body)
        media_type = doc.get("mediaType")
        if isinstance(media_type, str):
            return media_type
        return OCI_INDEX if "manifests" in doc else "application/vnd.oci.image.manifest.v1+json"
    except (ValueError, AttributeError):
        return "application/octet-stream"
