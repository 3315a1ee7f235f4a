"""The queries of zot's search API, over a `Source` (the request's view of the registry).

Each function is a root field of `Query` (`schema.py` binds them by name). Behaviour follows
zot's resolvers: a repository the caller may not read answers as zot answers it (an empty
object or list, never an error that would confirm the name exists), paging counts only what
the caller may see (`limit` 0 is everything), and GlobalSearch reads its text as zot does:
`name` searches repository names, `repo:tag` the tags of one repository starting with
`tag`, `:tag` tags anywhere containing it, `sha256:...` images by a digest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from ocireg.api.graphql import summaries
from ocireg.api.graphql.source import Source
from ocireg.digest import Digest

QUERY_LIMIT = 512  # zot's bound on a search text and on each filter value
NO_CVE = "cve search is disabled: ocireg does not scan images for vulnerabilities"

Summary = dict[str, Any]
Info = GraphQLResolveInfo[Source]  # the request's Source is the execution context


def _source(info: Info) -> Source:
    return info.context


# --- paging, sorting, filters ------------------------------------------------------------


def _page(
    items: list[Summary], requested: dict[str, Any] | None, default_sort: str, repos: bool
) -> tuple[list[Summary], dict[str, int]]:
    requested = requested or {}
    limit = requested.get("limit") or 0
    offset = requested.get("offset") or 0
    if limit < 0:
        raise GraphQLError("requested page limit parameter can't be negative")
    if offset < 0:
        raise GraphQLError("requested page offset parameter can't be negative")
    ordered = _sorted(items, requested.get("sortBy") or default_sort, repos)
    page = ordered[offset : offset + limit] if limit else ordered[offset:]
    if not items:
        return [], {"TotalCount": 0, "ItemCount": 0}
    return page, {"TotalCount": len(items), "ItemCount": len(page)}


def _sorted(items: list[Summary], sort_by: str, repos: bool) -> list[Summary]:
    def name(item: Summary) -> tuple[str, ...]:
        return (item["Name"],) if repos else (item["RepoName"], item["Tag"])

    if sort_by == "UPDATE_TIME":  # `_updated`: microseconds (registry/listing.py)
        return sorted(items, key=lambda item: (-item["_updated"], *name(item)))
    if sort_by == "ALPHABETIC_DSC":
        return sorted(items, key=name, reverse=True)
    if sort_by == "RELEVANCE" and repos:
        return sorted(items, key=lambda item: (item["Rank"], item["Name"]))
    if sort_by == "DOWNLOADS":  # summed-up items only (`_every_summed`)
        return sorted(items, key=lambda item: (-item["DownloadCount"], *name(item)))
    # ALPHABETIC_ASC; and STARS (which zot refuses), SEVERITY (no scanner here)
    return sorted(items, key=name)


def _every_summed(requested: dict[str, Any] | None, flt: dict[str, Any] | None) -> bool:
    """Whether a page needs every candidate summed up, not only the page's: a filter
    (platforms, signatures) or an order by downloads, neither of which the search index
    keeps."""
    return _filters(flt) or (requested or {}).get("sortBy") == "DOWNLOADS"


def _wanted(values: Sequence[str | None] | None) -> set[str]:
    cleaned = set()
    for value in values or ():
        value = (value or "").strip().lower()
        if len(value) > QUERY_LIMIT:
            raise GraphQLError("max string size limit exceeded for filter parameter")
        if value:
            cleaned.add(value)
    return cleaned


def _filters(flt: dict[str, Any] | None) -> bool:
    """Whether a `Filter` filters by what only the documents say (platforms, signatures);
    its `IsStarred` and `IsBookmarked` are applied to names first (`_marked`)."""
    flt = flt or {}
    return bool(_wanted(flt.get("Os")) or _wanted(flt.get("Arch")) or flt.get("HasToBeSigned"))


async def _marked(
    src: Source, ranked: list[tuple[str, int]], flt: dict[str, Any] | None
) -> list[tuple[str, int]]:
    """The repositories whose marks pass the filter's `IsStarred` and `IsBookmarked`, as zot
    applies them to repositories (true: marked by the caller; false: not; absent: either).
    zot applies them to nothing else: image results ignore them."""
    flt = flt or {}
    starred, bookmarked = flt.get("IsStarred"), flt.get("IsBookmarked")
    if starred is None and bookmarked is None:
        return ranked
    marks = await src.marks()
    return [
        (name, rank)
        for name, rank in ranked
        if (starred is None or (name in marks.starred) == starred)
        and (bookmarked is None or (name in marks.bookmarked) == bookmarked)
    ]


async def _accepted(
    platforms: list[dict[str, str]], signatures: Any, flt: dict[str, Any] | None
) -> bool:
    """Whether a summary passes zot's `Filter` on platforms and signatures."""
    if not flt:
        return True
    os_wanted, arch_wanted = _wanted(flt.get("Os")), _wanted(flt.get("Arch"))
    if os_wanted and not any(p["Os"].lower() in os_wanted for p in platforms):
        return False
    if arch_wanted and not any(p["Arch"].lower() in arch_wanted for p in platforms):
        return False
    return not (flt.get("HasToBeSigned") and not (signatures and await signatures.signed()))


def _image_platforms(summary: Summary) -> list[dict[str, str]]:
    return [m["Platform"] for m in summary["Manifests"]]


async def _filter_images(images: list[Summary], flt: dict[str, Any] | None) -> list[Summary]:
    keep = await asyncio.gather(
        *(_accepted(_image_platforms(i), i["_signatures"], flt) for i in images)
    )
    return [i for i, kept in zip(images, keep, strict=True) if kept]


def _image_keys(found: list[tuple[str, str, int]]) -> list[Summary]:
    """What the index says of images, as much as paging needs (`_sorted`)."""
    return [{"RepoName": repo, "Tag": tag, "_updated": when} for repo, tag, when in found]


async def _summed_up(src: Source, keys: list[Summary]) -> list[Summary]:
    """The summaries of these images, in their order, from their documents; one that cannot
    be read (or that index.json no longer names: a stale index) is left out."""
    wanted: dict[str, set[str]] = {}
    for key in keys:
        wanted.setdefault(key["RepoName"], set()).add(key["Tag"])
    found = await asyncio.gather(
        *(summaries.images_of(src, repo, tags) for repo, tags in wanted.items())
    )
    summed = {(i["RepoName"], i["Tag"]): i for images in found for i in images}
    return [summed[k] for key in keys if (k := (key["RepoName"], key["Tag"])) in summed]


async def _image_page(
    src: Source,
    keys: list[Summary],
    requested: dict[str, Any] | None,
    flt: dict[str, Any] | None = None,
) -> tuple[list[Summary], dict[str, int]]:
    """A page of images from the index's keys: ordered and counted from the keys, only the
    page's images summed up; with a filter (platforms, signatures: not in the index) every
    candidate is."""
    if _every_summed(requested, flt):
        images = await _filter_images(await _summed_up(src, keys), flt)
        return _page(images, requested, "RELEVANCE", repos=False)
    page, info = _page(keys, requested, "RELEVANCE", repos=False)
    results = await _summed_up(src, page)
    return results, {**info, "ItemCount": len(results)}


def _images_result(page: list[Summary], info: dict[str, int]) -> Summary:
    return {"Page": info, "Results": page}


# --- the queries ---------------------------------------------------------------------------


async def global_search(
    _: Any,
    info: Info,
    query: str,
    filter: dict[str, Any] | None = None,
    requestedPage: dict[str, Any] | None = None,
) -> Summary:
    src = _source(info)
    if len(query) > QUERY_LIMIT:
        raise GraphQLError("max string size limit exceeded for query parameter")
    _filters(filter)  # each value's length checked, as zot does first
    text = query.strip().strip("/").lower()
    if ":" in text or "@" in text:
        if text.startswith("sha256:"):
            keys = _image_keys(await src.with_digest(await src.repositories(), text))
        else:
            keys = await _tag_keys(src, text)
        page, page_info = await _image_page(src, keys, requestedPage, filter)
        return {"Page": page_info, "Images": page, "Repos": [], "Layers": []}
    matched = await _marked(src, await src.matching(text), filter)
    if _every_summed(requestedPage, filter):  # every match summed up
        found = await asyncio.gather(*(summaries.images_of(src, name) for name, _ in matched))
        repos = [
            summaries.repo_summary(name, images, rank)
            for (name, rank), images in zip(matched, found, strict=True)
            if images  # as zot: a repository without tags is not a search result
        ]
        keep = await asyncio.gather(
            *(_accepted(r["Platforms"], r["_signatures"], filter) for r in repos)
        )
        repos = [r for r, kept in zip(repos, keep, strict=True) if kept]
        page, page_info = _page(repos, requestedPage, "RELEVANCE", repos=True)
        page = await summaries.with_marks(src, page)
    else:
        page, page_info = await _repo_page(src, matched, requestedPage, "RELEVANCE")
    return {"Page": page_info, "Images": [], "Repos": page, "Layers": []}


async def _tag_keys(src: Source, text: str) -> list[Summary]:
    """`repo:tag`: that repository's images whose tag starts with `tag`; `:tag`: every
    image whose tag contains it."""
    repo, _, tag = text.partition(":")
    if repo:
        names = [name for name in await src.repositories() if name.lower() == repo]
        keys = _image_keys(await src.listed(names, check=True))
        return [k for k in keys if k["Tag"].lower().startswith(tag)]
    if tag:
        keys = _image_keys(await src.listed(await src.repositories()))
        return [k for k in keys if tag in k["Tag"].lower()]
    raise GraphQLError("invalid search query")


async def repo_list_with_newest_image(
    _: Any, info: Info, requestedPage: dict[str, Any] | None = None
) -> Summary:
    src = _source(info)
    names = await src.repositories()
    page, page_info = await _repo_page(src, [(n, 0) for n in names], requestedPage, "UPDATE_TIME")
    return {"Page": page_info, "Results": page}


async def _repo_page(
    src: Source,
    ranked: list[tuple[str, int]],
    requested: dict[str, Any] | None,
    default_sort: str,
) -> tuple[list[Summary], dict[str, int]]:
    """A page of repository summaries. Every repository is ordered (by rank, name or its
    update time, which the search index gives: its newest image's, or a tag's creation if
    later), but only the page's are summed up from their documents."""
    newest = await src.newest([name for name, _ in ranked])
    keys = [
        {"Name": name, "Rank": rank, "_updated": newest[name]}
        for name, rank in ranked
        if name in newest  # as zot: a repository without images is not listed
    ]
    if _every_summed(requested, None):
        keys = await _summed_repos(src, keys)
    page, page_info = _page(keys, requested, default_sort, repos=True)
    found = await asyncio.gather(*(summaries.images_of(src, key["Name"]) for key in page))
    results = [
        summaries.repo_summary(key["Name"], images, key["Rank"])
        for key, images in zip(page, found, strict=True)
        if images  # none left since the index was written
    ]
    await summaries.with_marks(src, results)
    return results, {**page_info, "ItemCount": len(results)}


async def _summed_repos(src: Source, keys: list[Summary]) -> list[Summary]:
    """The keys of repositories with their download counts (what ordering by downloads
    needs), from every repository's images."""
    found = await asyncio.gather(*(summaries.images_of(src, key["Name"]) for key in keys))
    return [
        {**key, "DownloadCount": summaries.downloads(images)}
        for key, images in zip(keys, found, strict=True)
    ]


async def expanded_repo_info(_: Any, info: Info, repo: str) -> Summary:
    src = _source(info)
    if not src.readable(repo):
        return {}  # as zot: nothing, and no error saying whether it exists
    if not await src.exists(repo):
        raise GraphQLError("repo metadata not found for given repo name")
    images = await summaries.images_of(src, repo)
    ordered = _sorted(images, "UPDATE_TIME", repos=False)
    summary = summaries.repo_summary(repo, images)
    await summaries.with_marks(src, [summary])
    return {"Images": ordered, "Summary": summary}


async def image_list(
    _: Any, info: Info, repo: str, requestedPage: dict[str, Any] | None = None
) -> Summary:
    src = _source(info)
    if repo:
        found = await src.listed([repo] if src.readable(repo) else [], check=True)
    else:
        found = await src.listed(await src.repositories())
    return _images_result(*await _image_page(src, _image_keys(found), requestedPage))


async def image_list_for_digest(
    _: Any, info: Info, id: str, requestedPage: dict[str, Any] | None = None
) -> Summary:
    src = _source(info)
    wanted = id.strip().lower()
    found = await src.with_digest(await src.repositories(), wanted) if wanted else []
    return _images_result(*await _image_page(src, _image_keys(found), requestedPage))


async def image(_: Any, info: Info, image: str) -> Summary:
    src = _source(info)
    repo, _, tag = image.partition(":")
    if not tag:
        raise GraphQLError("no reference provided")
    if not src.readable(repo):
        return {}
    tagged = dict(await src.tagged(repo))
    desc = tagged.get(tag)
    found = None
    if desc is not None:
        found = await summaries.image(src, repo, tag, desc, frozenset(tagged))
    if found is None or not summaries.listed(tag, found):
        raise GraphQLError(f"can't find image: {repo}:{tag}")
    return found


async def referrers(
    _: Any, info: Info, repo: str, digest: str, type: list[str] | None = None
) -> list[Summary]:
    src = _source(info)
    if not src.readable(repo):
        return []
    if not Digest.is_valid(digest):
        raise GraphQLError(f"bad digest string from request '{digest}'")
    wanted = type or []
    found = [summaries.referrer(d) for d in await src.referrers(repo, digest)]
    if not wanted or "" in wanted:
        return found
    return [r for r in found if r["ArtifactType"] in wanted]


async def starred_repos(_: Any, info: Info, requestedPage: dict[str, Any] | None = None) -> Summary:
    return await _marked_repos(_source(info), {"IsStarred": True}, requestedPage)


async def bookmarked_repos(
    _: Any, info: Info, requestedPage: dict[str, Any] | None = None
) -> Summary:
    return await _marked_repos(_source(info), {"IsBookmarked": True}, requestedPage)


async def _marked_repos(
    src: Source, flt: dict[str, Any], requestedPage: dict[str, Any] | None
) -> Summary:
    """The readable repositories the caller marked so, newest first by default, as zot
    pages them (an anonymous caller has none)."""
    marked = await _marked(src, [(n, 0) for n in await src.repositories()], flt)
    page, page_info = await _repo_page(src, marked, requestedPage, "UPDATE_TIME")
    return {"Page": page_info, "Results": page}


def refused(message: str) -> Callable[..., Any]:
    def resolve(*_: Any, **__: Any) -> Any:
        raise GraphQLError(message)

    return resolve


RESOLVERS: dict[str, Callable[..., Any]] = {
    "GlobalSearch": global_search,
    "RepoListWithNewestImage": repo_list_with_newest_image,
    "ExpandedRepoInfo": expanded_repo_info,
    "ImageList": image_list,
    "ImageListForDigest": image_list_for_digest,
    "Image": image,
    "Referrers": referrers,
    "StarredRepos": starred_repos,
    "BookmarkedRepos": bookmarked_repos,
    "CVEListForImage": refused(NO_CVE),
    "CVEDiffListForImages": refused(NO_CVE),
    "ImageListForCVE": refused(NO_CVE),
    "ImageListWithCVEFixed": refused(NO_CVE),
    "DerivedImageList": refused("DerivedImageList is not supported by ocireg"),
    "BaseImageList": refused("BaseImageList is not supported by ocireg"),
}
