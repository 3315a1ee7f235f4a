"""What the web pages show, read through the registry layer (`ImageStore`), never from HTTP.

Every read the pages make is here. The repositories list comes from the search index in
the metadata store (`ocireg.registry.search`: the pages need `extensions.search`, as zot's
do), so a page costs the same with 100 or 100,000 repositories; with separate storage per
member, from every member's (`ocireg.cluster.gather`). A repository's own page reads its
index.json, which has the last word (the cluster layer sends the page to the member that
stores it).

Manifests and configs are content-addressed: parsed once, kept in a bounded in-process
cache by digest (`DOCS`).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ocireg import jsondoc
from ocireg.cluster.gather import ClusterSearch
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import Identity
from ocireg.registry import ImageStore
from ocireg.registry.manifests import INDEX_TYPES
from ocireg.registry.search import RepoSummary, Screen, platform_text

IMAGE_CONFIGS = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
PAGE_MAX = 200  # repositories or tags on one page, whatever `n` asks
DOC_CACHE_BYTES = 32 * 1024 * 1024  # parsed manifests and configs, by the size of their JSON
DOC_MAX_BYTES = 1024 * 1024  # a bigger document is parsed each time, not kept
PARALLEL = 16  # storage reads in flight for one page
_T = TypeVar("_T")


@dataclass(frozen=True)
class RepoPage:
    repos: list[RepoSummary]
    next_after: str | None  # the `after` of the next page; None on the last one
    missing: list[str]  # members of the cluster whose repositories are not in the list


@dataclass(frozen=True)
class TagRow:
    tag: str
    digest: str
    media_type: str
    size: int
    platforms: list[str]  # of an image index's children, "os/arch[/variant]"
    pushed: float | None  # the manifest file's modification time


@dataclass(frozen=True)
class TagPage:
    repo: str
    rows: list[TagRow]
    total: int
    next_after: str | None


@dataclass(frozen=True)
class Child:
    digest: str
    media_type: str
    size: int
    platform: str
    artifact_type: str = ""


@dataclass
class ImageView:
    repo: str
    digest: str
    media_type: str
    pretty: str  # the manifest, indented
    size: int
    tags: list[str]
    annotations: dict[str, str]
    artifact_type: str
    subject: str | None
    config: dict[str, Any] | None  # the image config's `config` section and more, see _config
    layers: list[Child] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)  # an index's manifests
    referrers: list[Child] = field(default_factory=list)


class _Docs:
    """Parsed JSON documents by digest: immutable, so never stale; bounded by their size."""

    def __init__(self, budget: int = DOC_CACHE_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    async def get(self, store: ImageStore, repo: str, digest: str) -> Any:
        hit = self.items.get(digest)
        if hit is not None:
            self.items.move_to_end(digest)
            return hit[1]
        body = await store.blobs.get_small(repo, Digest.parse(digest))
        try:
            doc = jsondoc.loads(body)
        except ValueError:
            doc = None  # not JSON (a config of another kind): shown as absent
        if len(body) <= DOC_MAX_BYTES:
            self.items[digest] = (len(body), doc)
            self.used += len(body)
            while self.used > self.budget:
                self.used -= self.items.popitem(last=False)[1][0]
        return doc


DOCS = _Docs()


# --- repositories ------------------------------------------------------------------------


async def repository_page(
    search: ClusterSearch,
    contains: str,
    after: str | None,
    limit: int,
    screen: Screen,
    identity: Identity,
) -> RepoPage:
    """Up to `limit` repositories after `after` whose name contains `contains` (case
    folded) and that `screen` keeps, each summarised, from the search index (the members'
    indexes, with separate storage: cluster/gather.py)."""
    limit = max(1, min(limit, PAGE_MAX))
    listing = await search.repositories(contains, after or "", limit, identity, screen=screen)
    repos = listing.repositories
    return RepoPage(repos, repos[-1].name if listing.more and repos else None, listing.missing)


async def _account(
    store: ImageStore, repo: str, desc: dict[str, Any], sizes: dict[str, int], depth: int = 2
) -> None:
    """Add the sizes of a manifest and of what it references to `sizes`, by digest."""
    digest = desc.get("digest")
    if not isinstance(digest, str) or digest in sizes:
        return
    sizes[digest] = _int(desc.get("size"))
    try:
        doc = await DOCS.get(store, repo, digest)
    except (RegistryError, ValueError):
        return  # listed but unreadable: counted by its descriptor alone
    if not isinstance(doc, dict):
        return
    for blob in _descriptors(doc.get("layers")) + _descriptors([doc.get("config")]):
        sizes.setdefault(str(blob.get("digest")), _int(blob.get("size")))
    if depth > 0:
        for child in _descriptors(doc.get("manifests")):
            await _account(store, repo, child, sizes, depth - 1)


# --- one repository ----------------------------------------------------------------------


async def tag_page(store: ImageStore, repo: str, after: str | None, limit: int) -> TagPage:
    """The repository's tags after `after`, in name order, with what each points to."""
    index = await store.indexes.load(repo)
    if index is None:
        raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repo})
    tags = index.tags()
    limit = max(1, min(limit, PAGE_MAX))
    rest = [t for t in tags if not after or t > after]
    shown = rest[:limit]

    async def row(tag: str) -> TagRow | None:
        desc = index.by_tag(tag)
        if desc is None:
            return None
        return await _tag_row(store, repo, tag, desc)

    rows = [r for r in await _gather(shown, row) if r is not None]
    next_after = shown[-1] if len(rest) > limit else None
    return TagPage(repo, rows, len(tags), next_after)


async def _tag_row(store: ImageStore, repo: str, tag: str, desc: dict[str, Any]) -> TagRow:
    digest = str(desc.get("digest"))
    sizes: dict[str, int] = {}
    await _account(store, repo, desc, sizes)
    platforms: list[str] = []
    if desc.get("mediaType") in INDEX_TYPES:
        doc = await _doc_or_none(store, repo, digest)
        if isinstance(doc, dict):
            platforms = [p for c in _descriptors(doc.get("manifests")) if (p := _platform(c))]
    try:
        pushed: float | None = (await store.blobs.stat(repo, Digest.parse(digest))).mtime
    except (RegistryError, ValueError):
        pushed = None
    media_type = str(desc.get("mediaType") or "")
    return TagRow(tag, digest, media_type, sum(sizes.values()), platforms, pushed)


# --- one image ---------------------------------------------------------------------------


async def image_view(store: ImageStore, repo: str, reference: str) -> ImageView:
    """A manifest (by tag or digest) with its config, layers, children and referrers."""
    stored = await store.get_manifest(repo, reference)
    digest = str(stored.digest)
    try:
        doc = jsondoc.loads(stored.body)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    index = await store.indexes.load(repo)
    tags = [] if index is None else [t for t in index.tags() if _tag_digest(index, t) == digest]
    config_desc = doc.get("config") if isinstance(doc.get("config"), dict) else None
    config = None
    if config_desc is not None and isinstance(config_desc.get("digest"), str):
        raw = await _doc_or_none(store, repo, config_desc["digest"])
        config = _config(raw) if isinstance(raw, dict) else None
    subject = doc.get("subject")
    refs = await store.referrers(repo, stored.digest)
    artifact_type = doc.get("artifactType") or (config_desc or {}).get("mediaType", "")
    if artifact_type in IMAGE_CONFIGS:
        artifact_type = ""  # a plain image, not an artifact
    return ImageView(
        repo=repo,
        digest=digest,
        media_type=stored.media_type,
        pretty=json.dumps(doc, indent=2, sort_keys=False)
        if doc
        else stored.body.decode("utf-8", "replace"),
        size=len(stored.body),
        tags=tags,
        annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
        artifact_type=str(artifact_type or ""),
        subject=subject.get("digest") if isinstance(subject, dict) else None,
        config=config,
        layers=[_child(d) for d in _descriptors(doc.get("layers"))],
        children=[_child(d) for d in _descriptors(doc.get("manifests"))],
        referrers=[_child(d) for d in refs],
    )


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    """The parts of an image config a person looks for (OCI image-spec config fields)."""
    section: dict[str, Any] = raw["config"] if isinstance(raw.get("config"), dict) else {}
    platform = platform_text(raw) or ""
    history = [h for h in raw.get("history") or [] if isinstance(h, dict)]
    return {
        "platform": platform,
        "created": raw.get("created") or "",
        "entrypoint": section.get("Entrypoint"),
        "cmd": section.get("Cmd"),
        "workdir": section.get("WorkingDir") or "",
        "user": section.get("User") or "",
        "env": [str(e) for e in section.get("Env") or []],
        "labels": {str(k): str(v) for k, v in (section.get("Labels") or {}).items()},
        "exposed": sorted((section.get("ExposedPorts") or {}).keys()),
        "history": [
            {
                "created": str(h.get("created") or ""),
                "created_by": str(h.get("created_by") or ""),
                "empty": bool(h.get("empty_layer")),
            }
            for h in history
        ],
    }


# --- helpers -----------------------------------------------------------------------------


async def _gather(items: list[str], read: Callable[[str], Awaitable[_T]]) -> list[_T]:
    """`read` each item with at most PARALLEL in flight; results in order."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(item: str) -> _T:
        async with gate:
            return await read(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _doc_or_none(store: ImageStore, repo: str, digest: str) -> Any:
    try:
        return await DOCS.get(store, repo, digest)
    except (RegistryError, ValueError):
        return None


def _tag_digest(index: Any, tag: str) -> str | None:
    desc = index.by_tag(tag)
    return None if desc is None else desc.get("digest")


def _descriptors(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [d for d in value if isinstance(d, dict) and isinstance(d.get("digest"), str)]


def _platform(desc: dict[str, Any]) -> str:
    return platform_text(desc.get("platform")) or ""


def _child(desc: dict[str, Any]) -> Child:
    return Child(
        str(desc["digest"]),
        str(desc.get("mediaType") or ""),
        _int(desc.get("size")),
        _platform(desc),
        str(desc.get("artifactType") or ""),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
