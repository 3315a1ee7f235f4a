"""What the GraphQL resolvers read, and the one place they read it from.

`Source` is the seam between zot's search API and the registry: the repository names a
caller may read (the catalog index of the metadata store), the names a search matches (with a
rank: a scan of those names), which images zot lists in which repositories with their update
times (the search index, `ocireg.registry.search`: what lists order, count and page by
without reading any manifest), tags with their descriptors, manifest and config documents
(for the images of the page a query returns), referrers, pull times and counts (the
metadata store's, registry/pulls.py), push times, pushers and tag times (the search
index's) and the caller's stars and bookmarks (api/userprefs.py), all through `ImageStore`.
Tags and their descriptors come from one read of `index.json` through the store's index
cache (as the tags list reads it); documents, pulls and push times are read once per
request (a query names the same manifest from several fields). Reads are bounded
(READS_AT_ONCE) so that a page over a large registry on S3 does not open a request per
repository at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ocireg import jsondoc
from ocireg.digest import Digest
from ocireg.errors import RegistryError
from ocireg.meta.base import BOOKMARK, STAR, SearchStamps
from ocireg.names import validate_name
from ocireg.registry import ImageStore
from ocireg.registry.index import Index, tag_of

READS_AT_ONCE = 16  # storage reads one request keeps in flight


@dataclass(frozen=True)
class Pulls:
    """When each manifest of a repository was last pulled, and how many times."""

    last: dict[str, float]
    counts: dict[str, int]


@dataclass(frozen=True)
class Marks:
    """The repositories the caller starred and bookmarked (zot's userprefs)."""

    starred: frozenset[str]
    bookmarked: frozenset[str]


@dataclass(frozen=True)
class Access:
    """What the caller may do, per repository (access control as the API applies it)."""

    read: Callable[[str], bool]
    delete: Callable[[str], bool]


class Source:
    def __init__(self, store: ImageStore, access: Access, user: str | None = None) -> None:
        self.store = store
        self.access = access
        self.user = user  # None: anonymous, who has no stars or bookmarks
        self._marks: asyncio.Future[Marks] | None = None
        self._docs: dict[tuple[str, str], asyncio.Future[dict[str, Any] | None]] = {}
        self._pulls: dict[str, asyncio.Future[Pulls]] = {}
        self._stamps: dict[str, asyncio.Future[SearchStamps]] = {}
        self._gate = asyncio.Semaphore(READS_AT_ONCE)

    async def repositories(self) -> list[str]:
        """Every repository the caller may read, sorted."""
        names, _ = await self.store.catalog_page(None, None, self.access.read)
        return names

    async def matching(self, query: str) -> list[tuple[str, int]]:
        """The readable repositories whose name matches a GlobalSearch text, with a rank
        (lower is better): a scan of the readable names."""
        found = []
        for name in await self.repositories():
            rank = rank_name(query, name)
            if rank >= 0:
                found.append((name, rank))
        return found

    async def newest(self, names: list[str]) -> dict[str, int]:
        """The update time of the newest image zot lists in each of these repositories, or
        when one of their tags was created if later, from the search index (absent: it
        lists none)."""
        return await self.store.search.latest(names)

    async def listed(self, names: list[str], check: bool = False) -> list[tuple[str, str, int]]:
        """(repository, tag, update time) of each image zot lists in these repositories, from
        the search index. `check` (for a query about one repository): compare its records
        with its index.json first, so that what another writer changed is seen."""
        if check:
            for name in names:
                with contextlib.suppress(RegistryError):  # no such repository: none
                    await self.store.search.images(name)
        return _keyed(await self.store.search.listed(names))

    async def with_digest(self, names: list[str], prefix: str) -> list[tuple[str, str, int]]:
        """As `listed`, the images with a manifest, config or layer digest starting with
        `prefix` (lower case), from the search index's records."""
        return _keyed(await self.store.search.with_digest(names, prefix))

    def readable(self, repo: str) -> bool:
        """A valid name the caller may read. A query's names are not read by the request's
        classification: `open/../secret/app` matches the glob `open/**`, and only the storage
        driver's path check stood between it and another repository's index."""
        try:
            validate_name(repo)
        except RegistryError:
            return False
        return self.access.read(repo)

    async def exists(self, repo: str) -> bool:
        return await self._index(repo) is not None

    async def _index(self, repo: str) -> Index | None:
        async with self._gate:  # on S3 a cold index is a request: a few at a time
            return await self.store.indexes.load(repo)

    async def tagged(self, repo: str) -> list[tuple[str, dict[str, Any]]]:
        """(tag, descriptor) for every tag of `repo`, sorted by tag; none for a repository
        that is gone. One read of its index.json (as the tags list reads it)."""
        index = await self._index(repo)
        if index is None:
            return []
        found = [(tag, desc) for desc in index.manifests if (tag := tag_of(desc)) is not None]
        return sorted(found, key=lambda pair: pair[0])

    def document(self, repo: str, digest: str) -> Awaitable[dict[str, Any] | None]:
        """A manifest, index or config blob parsed as JSON (None when missing or not JSON);
        each read once per request."""
        key = (repo, digest)
        pending = self._docs.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._read(repo, digest))
            self._docs[key] = pending
        return pending

    async def _read(self, repo: str, digest: str) -> dict[str, Any] | None:
        try:
            parsed = Digest.parse(digest)
            async with self._gate:
                body = await self.store.blobs.get_small(repo, parsed)
            doc = jsondoc.loads(body)
        except (RegistryError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def pulls(self, repo: str) -> Awaitable[Pulls]:
        """The pulls noted for `repo`'s manifests; read once per request."""
        pending = self._pulls.get(repo)
        if pending is None:
            pending = asyncio.ensure_future(self._read_pulls(repo))
            self._pulls[repo] = pending
        return pending

    async def _read_pulls(self, repo: str) -> Pulls:
        meta = self.store.meta
        last, counts = await asyncio.gather(meta.pulls(repo), meta.pull_counts(repo))
        return Pulls(last, counts)

    def stamps(self, repo: str) -> Awaitable[SearchStamps]:
        """When `repo`'s tags were created and its manifests first pushed, and by whom
        (the search index's); read once per request."""
        pending = self._stamps.get(repo)
        if pending is None:
            pending = asyncio.ensure_future(self.store.search.stamps(repo))
            self._stamps[repo] = pending
        return pending

    def marks(self) -> Awaitable[Marks]:
        """The repositories the caller starred and bookmarked; read once per request."""
        if self._marks is None:
            self._marks = asyncio.ensure_future(self._read_marks())
        return self._marks

    async def _read_marks(self) -> Marks:
        if self.user is None:
            return Marks(frozenset(), frozenset())
        meta = self.store.meta
        starred, bookmarked = await asyncio.gather(
            meta.marked(self.user, STAR), meta.marked(self.user, BOOKMARK)
        )
        return Marks(frozenset(starred), frozenset(bookmarked))

    async def star_counts(self, repos: list[str]) -> dict[str, int]:
        return await self.store.meta.star_counts(repos)

    async def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        try:
            return await self.store.referrers(repo, Digest.parse(digest))
        except (RegistryError, ValueError):
            return []


def _keyed(found: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
    return [(repo, tag, when) for repo, tags in found.items() for tag, when in tags.items()]


def rank_name(query: str, name: str) -> int:
    """Where `query` (lower-case, no outer slashes) is found in a repository name, as zot
    ranks it: the whole name first, then a match in its last component, then in its first,
    then anywhere; -1 when it is not found. An empty query matches every name equally."""
    if not query:
        return 0
    lowered = name.lower()
    if query == lowered:
        return 0
    parts = lowered.split("/")
    if query.count("/") + 1 > len(parts):
        return -1
    if "/" not in query:
        at = parts[-1].find(query)
        if at >= 0:
            return (at + 1) * 10
        at = parts[0].find(query)
        if at >= 0:
            return (at + 1) * 1000
    at = lowered.find(query)
    return -1 if at < 0 else (at + 1) * 100000
