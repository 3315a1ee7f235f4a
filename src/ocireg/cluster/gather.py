"""Search and the repositories list over the whole cluster, whatever its storage.

On shared storage with a shared metadata store, every member's search index already holds
the whole registry: the local index answers. With separate storage (zot's model), each
member's index holds what that member stores, so a listing asks every member that does not
share this one's storage for its part (`GET /v2/_ocireg/search`, signed as a forwarded
request for the caller's identity, so the member answers from its own index alone and
filters by that identity), in parallel and with a short timeout, and merges the parts. A
member that does not answer in time is named in the result (`missing`) and its part is left
out: one member down does not take the pages down with it.

Merging keeps the local index's semantics: names in order, each at most once (a repository
both sides list, as with separate storage and a shared Redis, is shown once), pages that
follow one another with `after` without skipping or repeating a name, and every name
checked again by this member's `readable`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ocireg.cluster.peers import Peers, PeerUnanswered
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import Identity
from ocireg.registry.search import (
    ImageSummary,
    Readable,
    RepoSummary,
    Screen,
    Search,
    SearchResult,
    accepted,
)

log = logging.getLogger("ocireg.cluster")

SEARCH_PATH = "/v2/_ocireg/search"  # the JSON search endpoint (api/search.py)
ASK_TIMEOUT = 2.0  # seconds a listing waits for a member's part
_T = TypeVar("_T")
_K = TypeVar("_K", str, tuple[str, str])


@dataclass(frozen=True)
class RepoListing:
    repositories: list[RepoSummary]
    more: bool  # names follow the last one
    missing: list[str] = field(default_factory=list)  # members that did not answer


@dataclass(frozen=True)
class SearchListing:
    result: SearchResult
    missing: list[str] = field(default_factory=list)


class ClusterSearch:
    """The registry's search index as one, from this member's and its peers' (see above)."""

    def __init__(self, local: Search, peers: Peers | None, timeout: float = ASK_TIMEOUT) -> None:
        self.local = local
        self.peers = peers
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        return self.local.enabled

    def _others(self, forwarded: bool) -> list[str]:
        # A member asked by another answers for itself alone: no second round of asking.
        return [] if forwarded or self.peers is None else self.peers.separate()

    async def repositories(
        self,
        contains: str,
        after: str,
        limit: int,
        identity: Identity,
        readable: Readable | None = None,
        screen: Screen | None = None,
        forwarded: bool = False,
    ) -> RepoListing:
        """A page of repository summaries, as `Search.repositories`, over every member."""
        local = self.local.repositories(contains, after, limit, readable, screen)
        others = self._others(forwarded)
        if not others:
            page, more = await local
            return RepoListing(page, more)
        # One more than the page: a member that has it has more (its Link header is not
        # needed for that).
        query = {"contains": contains, "last": after, "n": str(limit + 1)}
        (page, more), parts, missing = await self._with_parts(local, others, query, identity)
        sources = [(page, more)]
        for part in parts:
            listed = _repos(part.get("repositories"))
            kept = set(await accepted([r.name for r in listed[:limit]], readable, screen))
            sources.append(([r for r in listed[:limit] if r.name in kept], len(listed) > limit))
        merged, more = merge_pages(sources, limit, key=lambda r: r.name)
        return RepoListing(merged, more, missing)

    async def query(
        self,
        text: str,
        limit: int,
        identity: Identity,
        readable: Readable | None = None,
        screen: Screen | None = None,
        forwarded: bool = False,
    ) -> SearchListing:
        """What `Search.query` finds, over every member: repositories by name, images by
        repository and tag, at most `limit` of each."""
        local = self.local.query(text, limit, readable, screen)
        others = self._others(forwarded)
        if not others:
            return SearchListing(await local)
        found, parts, missing = await self._with_parts(
            local, others, {"q": text, "n": str(limit)}, identity
        )
        theirs = [r for p in parts for r in _repos(p.get("repositories"))]
        their_images = [i for p in parts for i in _images(p.get("images"))]
        named = sorted({r.name for r in theirs} | {i.repo for i in their_images})
        kept = set(await accepted(named, readable, screen))
        repos = _unique(
            [*found.repositories, *(r for r in theirs if r.name in kept)], key=lambda r: r.name
        )
        images = _unique(
            [*found.images, *(i for i in their_images if i.repo in kept)],
            key=lambda i: (i.repo, i.tag),
        )
        return SearchListing(SearchResult(repos[:limit], images[:limit]), missing)

    async def summary(
        self, repo: str, identity: Identity, forwarded: bool = False
    ) -> dict[str, Any]:
        """One repository's summary and images as the JSON endpoint shows them, from the
        member that stores it."""
        owner = None if self.peers is None else self.peers.membership.owner_member(repo)
        if owner is None or forwarded or owner not in self._others(False):
            images = await self.local.images(repo)
            summary = (await self.local.summary(repo)).to_json()
            return summary | {"images": [i.to_json() for i in images]}
        assert self.peers is not None
        try:
            answer = await self.peers.ask(
                owner, SEARCH_PATH, {"repository": repo}, identity, self.timeout
            )
        except PeerUnanswered as exc:
            answer = exc
        if not isinstance(answer, dict):
            raise RegistryError(ErrorCode.UNAVAILABLE, detail={"member": owner})
        return answer

    async def _with_parts(
        self, local: Awaitable[_T], others: list[str], query: dict[str, str], identity: Identity
    ) -> tuple[_T, list[dict[str, Any]], list[str]]:
        """The local answer, the members' JSON parts, and the members that gave none."""
        assert self.peers is not None
        peers = self.peers
        asks = [peers.ask(m, SEARCH_PATH, query, identity, self.timeout) for m in others]
        mine, *theirs = await asyncio.gather(local, *asks, return_exceptions=True)
        if isinstance(mine, BaseException):
            raise mine
        parts: list[dict[str, Any]] = []
        missing: list[str] = []
        for member, answer in zip(others, theirs, strict=True):
            if isinstance(answer, dict):
                parts.append(answer)
                continue
            missing.append(member)
            reason = answer.reason if isinstance(answer, PeerUnanswered) else repr(answer)
            log.warning(
                "cluster member left out of a listing", extra={"member": member, "error": reason}
            )
        return mine, parts, missing


def merge_pages(
    sources: list[tuple[list[_T], bool]], limit: int, key: Callable[[_T], str]
) -> tuple[list[_T], bool]:
    """One page of `limit` items from pages of several sorted sources, each with whether
    more follow it. An item may be shown only if no source that has more could still hold a
    smaller one: up to the smallest last item of those sources. The next page starts after
    the last item shown, where every source resumes."""
    bound: str | None = None
    for items, more in sources:
        if more and items:
            last = key(items[-1])
            bound = last if bound is None or last < bound else bound
    merged = _unique([item for items, _ in sources for item in items], key=key)
    shown = [item for item in merged if bound is None or key(item) <= bound]
    more = any(more for _, more in sources) or len(shown) < len(merged)
    if len(shown) > limit:
        shown, more = shown[:limit], True
    return shown, more


def _unique(items: Iterable[_T], key: Callable[[_T], _K]) -> list[_T]:
    """Sorted by `key`, the first of each key kept (the local answer comes first)."""
    seen: dict[_K, _T] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return [seen[k] for k in sorted(seen)]


def _parsed(raw: Any, parse: Callable[[dict[str, Any]], _T]) -> list[_T]:
    """A member's list, parsed; an entry that does not parse is left out."""
    parsed: list[_T] = []
    for entry in raw if isinstance(raw, list) else ():
        try:
            parsed.append(parse(entry))
        except (KeyError, TypeError, ValueError):
            continue
    return parsed


def _repos(raw: Any) -> list[RepoSummary]:
    return _parsed(raw, RepoSummary.from_json)


def _images(raw: Any) -> list[ImageSummary]:
    return _parsed(raw, ImageSummary.from_json)
