"""Search: what the web UI lists and what its search box finds, from an index in the
metadata store (sqlite or Redis) instead of a walk of the storage.

The index holds, per repository, one record per tag: digest, media type, artifact type,
size, platforms (of an image index), push time and the `org.opencontainers.image.*`
annotations title, description, vendor and source. A repository's summary is worked out
from its records when it is read: the number of tags, the latest push, and its size, the sum
of the sizes of the distinct manifests and blobs its tags reach (an index, its child
manifests, their configs and layers; a layer shared by two tags counts once; untagged
manifests and blobs count for nothing). A tag write costs one record written, whatever the
repository holds. With the record, in the same write: when the tag was created and when its
manifest was first pushed to the repository, and by whom (zot's TaggedTimestamp,
PushTimestamp and PushedBy; a push by digest notes the latter two).

Kept current by the write path (a manifest PUT, a tag or manifest DELETE: after index.json
changed, so the index never names what a failed push did not store), rebuilt from storage by
`ocireg rebuild-meta` and at start-up when the store comes back empty, and maintained only
while `extensions.search` is enabled. index.json has the last word: `images(repo)` checks
the records of the repository against it and repairs them (a zot member on the same storage
does not keep this index; two members racing on one tag may leave the older record).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ocireg import jsondoc
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.logs import Progress
from ocireg.meta import MetaStore, MetaUnavailable, Push, SearchStamps
from ocireg.registry import listing
from ocireg.registry.blobs import BlobStore
from ocireg.registry.index import IndexCache
from ocireg.registry.manifests import INDEX_TYPES, Manifest, parse_stored
from ocireg.registry.rebuilds import BackgroundRebuild

log = logging.getLogger("ocireg.registry")
REFRESH_EVERY = 600.0  # seconds between refreshes while a zot member writes the storage
CHECK_EVERY = 5.0  # seconds between checks that the index is not empty (a flushed Redis)
PAGE_CHUNK = 500  # repository names read at a time to fill a page
FIND_CHUNK = 200  # image hits read from the store at a time, before access control
CONFIG_READ_LIMIT = 4 * 1024 * 1024  # bytes: the manifest size limit; a larger config is data
ANNOTATIONS = ("title", "description", "vendor", "source")  # org.opencontainers.image.*

Readable = Callable[[str], bool]
# An access check that must ask elsewhere (the pages' token server): the names it keeps, in
# order, asked once per chunk of names rather than per name.
Screen = Callable[[list[str]], Awaitable[list[str]]]


@dataclass(frozen=True)
class ImageSummary:
    """One tag of a repository."""

    repo: str
    tag: str
    digest: str
    media_type: str
    artifact_type: str | None  # declared, else (image manifests) the config media type
    size: int  # the manifest and the distinct manifests and blobs it reaches
    platforms: tuple[str, ...]  # "os/arch[/variant]" of an index's manifests
    pushed: float | None  # seconds since the epoch
    title: str | None = None
    description: str | None = None
    vendor: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repo,
            "tag": self.tag,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "platforms": list(self.platforms),
            "pushed": iso_time(self.pushed),
            "title": self.title,
            "description": self.description,
            "vendor": self.vendor,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageSummary:
        """What `to_json` wrote (another member's answer, `cluster/gather.py`)."""
        return cls(
            repo=str(data["repository"]),
            tag=str(data["tag"]),
            digest=str(data["digest"]),
            media_type=str(data.get("mediaType") or ""),
            artifact_type=data.get("artifactType"),
            size=int(data.get("size") or 0),
            platforms=tuple(str(p) for p in data.get("platforms") or ()),
            pushed=parse_iso_time(data.get("pushed")),
            title=data.get("title"),
            description=data.get("description"),
            vendor=data.get("vendor"),
            source=data.get("source"),
        )


@dataclass(frozen=True)
class RepoSummary:
    name: str
    tags: int
    last_push: float | None  # the latest push time of its tags, None without tags
    size: int  # the distinct manifests and blobs its tags reach (module docstring)
    # The most recently pushed tag (zot's NewestImage), None without tags; not in the JSON.
    newest: ImageSummary | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tags": self.tags,
            "lastPush": iso_time(self.last_push),
            "size": self.size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoSummary:
        return cls(
            name=str(data["name"]),
            tags=int(data.get("tags") or 0),
            last_push=parse_iso_time(data.get("lastPush")),
            size=int(data.get("size") or 0),
        )


@dataclass(frozen=True)
class SearchResult:
    repositories: list[RepoSummary]  # whose name contains the text
    images: list[ImageSummary]  # whose tag, annotations or artifact type contain it


class Search:
    def __init__(
        self,
        meta: MetaStore,
        blobs: BlobStore,
        indexes: IndexCache,
        repositories: Callable[[], AsyncIterator[str]],
        enabled: bool,
    ) -> None:
        self.meta = meta
        self.blobs = blobs
        self.indexes = indexes
        self.walk = repositories
        self.enabled = enabled
        self._checked = -CHECK_EVERY  # monotonic time the index was last checked for emptiness
        self._refreshed = -REFRESH_EVERY  # ... and last refreshed (a zot member writes too)
        self._refreshing: asyncio.Task[None] | None = None
        self._forgetting: asyncio.Task[None] | None = None
        # Whether every other writer of the storage keeps this index too (the store's).
        self.only_ocireg_writes: Callable[[], bool] = lambda: True
        self._rebuild = BackgroundRebuild(
            "search index", meta.search_ready, meta.search_lock, self.rebuild
        )

    # --- the write path ----------------------------------------------------------------

    async def pushed(
        self,
        repo: str,
        tag: str | None,
        desc: dict[str, Any],
        body: bytes,
        manifest: Manifest,
        by: str = "",
    ) -> None:
        """After a manifest PUT by `by` ("": anonymous) changed index.json. The push is
        stored already: a store that fails here costs a stale record, not the push
        (`images` repairs it). With the record, in the same write: the push of its
        manifest, and the time a new tag was created (`stamps`)."""
        if not self.enabled:
            return
        now = time.time()
        try:
            if tag is None:
                await self.meta.search_note_push(repo, desc["digest"], Push(now, by))
            else:
                record = await self._record(repo, tag, desc, body, now, manifest)
                text = search_text(tag, record)
                await self.meta.search_put(repo, tag, record, text, now, Push(now, by))
        except MetaUnavailable as exc:
            log.warning("search index not updated", extra={"repo": repo, "error": str(exc)})

    async def removed(self, repo: str, reference: str, is_tag: bool) -> None:
        """After a tag (or a manifest and its tags) left index.json."""
        if not self.enabled:
            return
        try:
            if is_tag:
                await self.meta.search_remove(repo, reference)
                return
            await self.meta.search_forget_push(repo, reference)
            records = (await self.meta.search_records([repo])).get(repo, {})
            for tag, record in records.items():
                if record.get("digest") == reference:
                    await self.meta.search_remove(repo, tag)
        except MetaUnavailable as exc:
            log.warning("search index not updated", extra={"repo": repo, "error": str(exc)})

    # --- reads -------------------------------------------------------------------------

    async def repositories(
        self,
        contains: str = "",
        after: str = "",
        limit: int = 50,
        readable: Readable | None = None,
        screen: Screen | None = None,
    ) -> tuple[list[RepoSummary], bool]:
        """A page of repositories whose name contains `contains`, in name order after
        `after`, only those `readable` and `screen` accept, and whether more follow. The cost
        follows the page (and the names access control skips), not the number of
        repositories."""
        self.kick_rebuild()
        names: list[str] = []
        cursor = after
        while len(names) <= limit:
            chunk = await self.meta.search_repositories(contains.lower(), cursor, PAGE_CHUNK)
            names += await accepted(chunk, readable, screen)
            if len(chunk) < PAGE_CHUNK:
                break
            cursor = chunk[-1]
        more = len(names) > limit
        names = names[:limit]
        records = await self.meta.search_records(names)
        return [summarise(name, records.get(name, {})) for name in names], more

    async def query(
        self,
        text: str,
        limit: int = 50,
        readable: Readable | None = None,
        screen: Screen | None = None,
    ) -> SearchResult:
        """Up to `limit` repositories whose name contains `text` and up to `limit` tags whose
        tag, annotations (title, description, vendor, source) or artifact type contain it,
        case-insensitively, in name order; only repositories `readable` and `screen` accept."""
        needle = text.strip().lower()
        if not needle:
            return SearchResult([], [])
        repos, _ = await self.repositories(needle, "", limit, readable, screen)
        hits: list[tuple[str, str]] = []
        after = None
        while len(hits) < limit:  # more than a page only when access control skips hits
            chunk = await self.meta.search_find(needle, after, FIND_CHUNK)
            kept = set(await accepted(sorted({repo for repo, _ in chunk}), readable, screen))
            hits += [hit for hit in chunk if hit[0] in kept]
            if len(chunk) < FIND_CHUNK:
                break
            after = chunk[-1]
        hits = hits[:limit]
        records = await self.meta.search_records(sorted({repo for repo, _ in hits}))
        images = [
            image_summary(repo, tag, records[repo][tag])
            for repo, tag in hits
            if tag in records.get(repo, {})
        ]
        return SearchResult(repos, images)

    async def listed(self, repos: list[str]) -> dict[str, dict[str, int]]:
        """The tags zot lists as images in these repositories, each with zot's update time in
        microseconds since 1970 (`registry/listing.py`): repo -> tag -> time. One read of
        the index (no manifest), for zot's image lists to order and count before reading
        the images of the page they return."""
        self.kick_rebuild()
        return await self.meta.search_listed(repos)

    async def with_digest(self, repos: list[str], prefix: str) -> dict[str, dict[str, int]]:
        """As `listed`, the tags whose manifest, or a manifest, config or layer it reaches,
        has a digest starting with `prefix` (lower case): a read of these repositories'
        records, a chunk at a time."""
        self.kick_rebuild()
        found: dict[str, dict[str, int]] = {}
        for i in range(0, len(repos), PAGE_CHUNK):
            records = await self.meta.search_records(repos[i : i + PAGE_CHUNK])
            for repo, tags in records.items():
                for tag, record in tags.items():
                    updated = record.get("updated")
                    if record.get("listed") is not True or not isinstance(updated, int):
                        continue
                    if any(d.lower().startswith(prefix) for d in record.get("blobs") or {}):
                        found.setdefault(repo, {})[tag] = updated
        return found

    async def latest(self, repos: list[str]) -> dict[str, int]:
        """The update time of the newest image zot lists in each of these repositories, or
        the time one of their tags was created if that is later (absent: none lists an
        image): zot's repository lists order by it (its RepoSummary.LastUpdated)."""
        self.kick_rebuild()
        return await self.meta.search_latest(repos)

    async def stamps(self, repo: str) -> SearchStamps:
        """When each tag of `repo` was created (absent: not known) and when each of its
        manifests was first pushed and by whom (zot's TaggedTimestamp, PushTimestamp and
        PushedBy). A tagged manifest whose push was not noted (a record of an older
        ocireg) has its record's push time, the time its tag was last written."""
        noted = await self.meta.search_stamps(repo)
        index = await self.indexes.load(repo)
        tagged: set[str] = set()
        if index is not None:
            tagged = {str(d["digest"]) for t in index.tags() if (d := index.by_tag(t)) is not None}
        missing = tagged - noted.pushes.keys()
        if not missing:
            return noted
        pushes = dict(noted.pushes)
        for record in (await self.meta.search_records([repo])).get(repo, {}).values():
            digest, at = record.get("digest"), record.get("pushed")
            if digest not in missing or not isinstance(at, int | float):
                continue
            if (known := pushes.get(digest)) is None or at < known.at:  # the earliest tag's
                pushes[digest] = Push(at)
        return SearchStamps(noted.tagged, pushes)

    async def summary(self, repo: str) -> RepoSummary:
        """The summary of one repository, from its records as they are (zot's
        ExpandedRepoInfo; `images` first, to have them checked against index.json)."""
        return summarise(repo, (await self.meta.search_records([repo])).get(repo, {}))

    async def images(self, repo: str) -> list[ImageSummary]:
        """The tags of `repo` (NAME_UNKNOWN if there is no such repository), by tag, checked
        against its index.json: records that disagree are rewritten from storage, those of
        tags it no longer has removed. Access control is the caller's."""
        index = await self.indexes.load(repo)
        if index is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repo})
        records = (await self.meta.search_records([repo])).get(repo, {})
        found: list[ImageSummary] = []
        for tag in index.tags():
            desc = index.by_tag(tag)
            record = records.get(tag)
            if desc is not None and (record is None or record.get("digest") != desc["digest"]):
                record = await self._stored_record(repo, tag, desc)
            if record is not None:
                found.append(image_summary(repo, tag, record))
        for tag in set(records) - set(index.tags()):
            await self._heal(self.meta.search_remove(repo, tag))
        return found

    # --- rebuild -----------------------------------------------------------------------

    def kick_rebuild(self) -> None:
        """Rebuild the index in the background if it is empty and nobody else is (looked
        at once per CHECK_EVERY seconds at most: reads call this). While another writer
        of the storage does not keep the index (a zot member), refresh it from storage
        every REFRESH_EVERY seconds, one process of the cluster at a time."""
        if not self.enabled:
            if self._forgetting is None:  # once per process
                self._forgetting = asyncio.create_task(self._forget())
            return
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY:
            self._checked = now
            self._rebuild.kick()
        if not self.only_ocireg_writes() and now - self._refreshed >= REFRESH_EVERY:
            self._refreshed = now
            self._refreshing = asyncio.create_task(self._refresh_once())

    async def _forget(self) -> None:
        """With search off, the write path does not keep the index: drop it, so that
        turning search on again rebuilds it rather than trusting a stale one."""
        try:
            if await self.meta.search_ready():
                await self.meta.search_reset(mark_ready=False)
        except Exception:
            log.exception("could not drop the search index")

    async def _refresh_once(self) -> None:
        try:
            if await self.meta.search_lock(f"{os.getpid()}", int(REFRESH_EVERY)):
                await self.refresh()
        except Exception:
            log.exception("search index refresh failed")

    async def refresh(self, progress: Progress | None = None) -> int:
        """Bring every repository's records in line with its index.json (without emptying
        the index first); returns the tags recorded."""
        count = 0
        async for repo in self.walk():
            await self.meta.search_add_repository(repo)
            with contextlib.suppress(RegistryError):  # gone since the listing
                count += len(await self.images(repo))
            if progress is not None:
                progress.step(repo)
        if progress is not None:
            progress.finish()
        return count

    async def rebuild(self) -> int:
        """Refill the index from storage; returns the tags recorded."""
        await self.meta.search_reset(mark_ready=False)
        count = await self.refresh(Progress(log, "rebuild-search"))
        await self.meta.search_reset(mark_ready=True)
        return count

    # --- records -----------------------------------------------------------------------

    async def _stored_record(
        self, repo: str, tag: str, desc: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The record of `tag` from storage (the manifest file's time as its push time),
        written to the index; None when the manifest cannot be read."""
        try:
            digest = Digest.parse(desc["digest"])
            body = await self.blobs.get_small(repo, digest)
            pushed = (await self.blobs.stat(repo, digest)).mtime
        except (RegistryError, ValueError):
            return None
        record = await self._record(repo, tag, desc, body, pushed)
        # The file's time as the manifest's first push, by nobody known (as zot's rebuild),
        # where none is noted; the tag's creation time stays unknown.
        text = search_text(tag, record)
        await self._heal(self.meta.search_put(repo, tag, record, text, push=Push(pushed)))
        return record

    async def _heal(self, write: Any) -> None:
        if not self.enabled:
            write.close()
            return
        try:
            await write
        except MetaUnavailable as exc:
            log.warning("search index not repaired", extra={"error": str(exc)})

    async def _record(
        self,
        repo: str,
        tag: str,
        desc: dict[str, Any],
        body: bytes,
        pushed: float,
        manifest: Manifest | None = None,
    ) -> dict[str, Any]:
        """`manifest`: the body parsed already (a push), else parsed here. Besides what the
        pages show, zot's update time and whether zot lists the tag as an image
        (`registry/listing.py`): for an image one more small read, its config; for an index,
        each child's config (its manifest is read for its layers anyway)."""
        if manifest is None:
            manifest = parse_stored(body, desc.get("mediaType"))
        try:
            doc = jsondoc.loads(body)
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        sizes = {desc["digest"]: len(body)}
        platforms: list[str] = []
        artifact_type = manifest.artifact_type if manifest else None
        if manifest is not None and manifest.is_index:
            times = []
            for child in _descriptors(doc.get("manifests")):
                sizes[child["digest"]] = child["size"]
                platform = platform_text(child.get("platform"))
                if platform and platform not in platforms:
                    platforms.append(platform)
                blobs, updated = await self._child(repo, child)
                sizes.update(blobs)
                if updated is not None:
                    times.append(updated)
            created = listing.index_created(doc)
            stamp = created or max(times, key=lambda t: t.when, default=listing.ZERO)
            listed = True
        else:
            sizes.update(_blob_sizes(doc))
            stamp = listing.image_updated(doc, await self._config(repo, doc))
            listed = not listing.is_signature(artifact_type, doc)
        annotations = doc.get("annotations")
        annotations = annotations if isinstance(annotations, dict) else {}
        record: dict[str, Any] = {
            "digest": desc["digest"],
            "mediaType": manifest.media_type if manifest else desc.get("mediaType", ""),
            "artifactType": artifact_type,
            "platforms": platforms,
            "pushed": pushed,
            "blobs": sizes,
            "updated": listing.microseconds(stamp.when),
            "listed": listed and not listing.COSIGN_TAG.fullmatch(tag),
        }
        for name in ANNOTATIONS:
            value = annotations.get(f"org.opencontainers.image.{name}")
            if isinstance(value, str):
                record[name] = value
        return record

    async def _child(
        self, repo: str, child: dict[str, Any]
    ) -> tuple[dict[str, int], listing.Stamp | None]:
        """An index's child manifest: its config and layers (digest -> size) and its update
        time; nothing for a nested index (counted by its own size) or a child not stored
        (yet: counted by its descriptor alone)."""
        if child.get("mediaType") in INDEX_TYPES:
            return {}, None
        doc = await self._document(repo, child["digest"])
        if doc is None:
            return {}, None
        return _blob_sizes(doc), listing.image_updated(doc, await self._config(repo, doc))

    async def _config(self, repo: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """An image's config, `{}` when it cannot be read or is too large to be one (an
        artifact's config blob may be anything: not read on the write path)."""
        config = _descriptors([manifest.get("config")])
        if not config or config[0]["size"] > CONFIG_READ_LIMIT:
            return {}
        return await self._document(repo, config[0]["digest"]) or {}

    async def _document(self, repo: str, digest: str) -> dict[str, Any] | None:
        """A small stored JSON document (a manifest, a config), None if unreadable."""
        try:
            doc = jsondoc.loads(await self.blobs.get_small(repo, Digest.parse(digest)))
        except (RegistryError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None


def search_text(tag: str, record: dict[str, Any]) -> str:
    """What a query may find a tag by, lower case, one field a line."""
    fields = [tag, record.get("artifactType") or ""]
    fields += [record.get(name) or "" for name in ANNOTATIONS]
    return "\n".join(fields).lower()


def summarise(name: str, records: dict[str, dict[str, Any]]) -> RepoSummary:
    sizes: dict[str, int] = {}
    for record in records.values():
        sizes.update(record.get("blobs") or {})
    pushes = [
        (r["pushed"], tag) for tag, r in records.items() if isinstance(r.get("pushed"), int | float)
    ]
    last, tag = max(pushes, default=(None, None))
    newest = image_summary(name, tag, records[tag]) if tag is not None else None
    return RepoSummary(name, len(records), last, sum(sizes.values()), newest)


def image_summary(repo: str, tag: str, record: dict[str, Any]) -> ImageSummary:
    sizes = record.get("blobs") or {}
    return ImageSummary(
        repo=repo,
        tag=tag,
        digest=record["digest"],
        media_type=record.get("mediaType") or "",
        artifact_type=record.get("artifactType"),
        size=sum(sizes.values()),
        platforms=tuple(record.get("platforms") or ()),
        pushed=record.get("pushed"),
        title=record.get("title"),
        description=record.get("description"),
        vendor=record.get("vendor"),
        source=record.get("source"),
    )


def iso_time(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def parse_iso_time(text: Any) -> float | None:
    """The inverse of `iso_time`; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _descriptors(value: Any) -> list[dict[str, Any]]:
    """The well-formed descriptors (a digest string, an integer size) of a list."""
    if not isinstance(value, list):
        return []
    return [
        d
        for d in value
        if isinstance(d, dict)
        and isinstance(d.get("digest"), str)
        and isinstance(d.get("size"), int)
        and not isinstance(d.get("size"), bool)
    ]


def _blob_sizes(doc: Any) -> dict[str, int]:
    """Config and layers of an image manifest: digest -> size."""
    if not isinstance(doc, dict):
        return {}
    return {d["digest"]: d["size"] for d in _descriptors([doc.get("config"), *_layers(doc)])}


def _layers(doc: dict[str, Any]) -> list[Any]:
    layers = doc.get("layers")
    return layers if isinstance(layers, list) else []


def platform_text(value: Any) -> str | None:
    """An OCI platform (or an image config's os/architecture/variant) as "os/arch[/variant]";
    None for anything else."""
    if not isinstance(value, dict):
        return None
    parts = [value.get("os"), value.get("architecture"), value.get("variant")]
    text = "/".join(p for p in parts if isinstance(p, str) and p)
    return text or None


async def accepted(names: list[str], readable: Readable | None, screen: Screen | None) -> list[str]:
    """The names both access checks accept, in order."""
    kept = names if readable is None else [name for name in names if readable(name)]
    return await screen(kept) if screen is not None and kept else kept
