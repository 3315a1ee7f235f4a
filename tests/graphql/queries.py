# ruff: noqa: E501  (the query texts are kept on one line each, exactly as sent)
"""The query texts zot's clients send to `/v2/_zot/ext/search`, kept exactly (whitespace
included), as data for the tests.

zli (zot's command line, pkg/cli/client/service.go and discover.go of project-zot/zot)
formats Go raw strings with `fmt.Sprintf`; zui (project-zot/zui, src/api.js) builds the
`?query=` of a GET from JavaScript template literals. The functions below fill in the same
places the same way, so the text the server receives is the one those clients send.
"""

from __future__ import annotations

import json

# --- zli: each a Go format string; %s became {} here -----------------------------------------
ZLI_SCHEMA = "\n\t\t{\n\t\t\t__schema {\n\t\t\t\tqueryType {\n\t\t\t\t\tfields {\n\t\t\t\t\t\tname\n\t\t\t\t\t\targs {\n\t\t\t\t\t\t\tname\n\t\t\t\t\t\t}\n\t\t\t\t\t\ttype {\n\t\t\t\t\t\t\tname\n\t\t\t\t\t\t\tkind\n\t\t\t\t\t\t}\n\t\t\t\t\t}\n\t\t\t\t\t__typename\n\t\t\t\t}\n\t\t\t\ttypes {\n\t\t\t\t\tname\n\t\t\t\t\tfields {\n\t\t\t\t\t\tname\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t}"
_ZLI_IMAGE_LIST = '\n\t{{\n\t\tImageList(repo: "{}", requestedPage: {{sortBy: {}}}) {{\n\t\t\tResults {{\n\t\t\t\tRepoName Tag\n\t\t\t\tDigest\n\t\t\t\tMediaType\n\t\t\t\tManifests {{\n\t\t\t\t\tDigest\n\t\t\t\t\tConfigDigest\n\t\t\t\t\tSize\n\t\t\t\t\tPlatform {{Os Arch}}\n\t\t\t\t\tIsSigned\n\t\t\t\t\tLayers {{Size Digest}}\n\t\t\t\t\tLastUpdated\n\t\t\t\t}}\n\t\t\t\tLastUpdated\n\t\t\t\tSize\n\t\t\t\tIsSigned\n\t\t\t}}\n\t\t}}\n\t}}'
_ZLI_IMAGE_LIST_FOR_DIGEST = '\n\t{{\n\t\tImageListForDigest(id: "{}", requestedPage: {{sortBy: {}}}) {{\n\t\t\tResults {{\n\t\t\t\tRepoName Tag\n\t\t\t\tDigest\n\t\t\t\tMediaType\n\t\t\t\tManifests {{\n\t\t\t\t\tDigest\n\t\t\t\t\tConfigDigest\n\t\t\t\t\tSize\n\t\t\t\t\tPlatform {{Os Arch}}\n\t\t\t\t\tIsSigned\n\t\t\t\t\tLayers {{Size Digest}}\n\t\t\t\t\tLastUpdated\n\t\t\t\t}}\n\t\t\t\tLastUpdated\n\t\t\t\tSize\n\t\t\t\tIsSigned\n\t\t\t}}\n\t\t}}\n\t}}'
_ZLI_GLOBAL_SEARCH = '\n\t\t{{\n\t\t\tGlobalSearch(query:"{}", requestedPage: {{sortBy: {}}}){{\n\t\t\t\tImages {{\n\t\t\t\t\tRepoName\n\t\t\t\t\tTag\n\t\t\t\t\tMediaType\n\t\t\t\t\tDigest\n\t\t\t\t\tSize\n\t\t\t\t\tIsSigned\n\t\t\t\t\tLastUpdated\n\t\t\t\t\tManifests {{\n\t\t\t\t\t\tDigest\n\t\t\t\t\t\tConfigDigest\n\t\t\t\t\t\tPlatform {{Os Arch}}\n\t\t\t\t\t\tSize\n\t\t\t\t\t\tIsSigned\n\t\t\t\t\t\tLayers {{Size Digest}}\n\t\t\t\t\t\tLastUpdated\n\t\t\t\t\t}}\n\t\t\t\t}}\n\t\t\t\tRepos {{\n\t\t\t\t\tName\n\t\t\t\t\tPlatforms {{ Os Arch }}\n\t\t\t\t\tLastUpdated\n\t\t\t\t\tSize\n\t\t\t\t\tDownloadCount\n\t\t\t\t\tStarCount\n\t\t\t\t}}\n\t\t\t}}\n\t\t}}'
_ZLI_REFERRERS = '\n\t\t{{\n\t\t\tReferrers( repo: "{}", digest: "{}" ){{\n\t\t\t\tArtifactType,\n\t\t\t\tDigest,\n\t\t\t\tMediaType,\n\t\t\t\tSize,\n\t\t\t\tAnnotations{{\n\t\t\t\t\tKey\n\t\t\t\t\tValue\n\t\t\t\t}}\n\t\t\t}}\n\t\t}}'
_ZLI_CVE_LIST_FOR_IMAGE = '\n\t{{\n\t\tCVEListForImage (image:"{}", searchedCVE:"{}", requestedPage: {{sortBy: {}}}) {{\n\t\t\tTag\n\t\t\tCVEList {{\n\t\t\t\tId Title Severity Description\n\t\t\t\tPackageList {{Name PackagePath InstalledVersion FixedVersion}}\n\t\t\t}}\n\t\t\tSummary {{\n\t\t\t\tCount UnknownCount LowCount MediumCount HighCount CriticalCount MaxSeverity\n\t\t\t}}\n\t\t}}\n\t}}'

# zli's default --sort-by (alpha-asc) as its Flag2SortCriteria spells it in a query.
ZLI_SORT = "ALPHABETIC_ASC"


def zli_image_list(repo: str, sort: str = ZLI_SORT) -> str:
    return _ZLI_IMAGE_LIST.format(repo, sort)


def zli_image_list_for_digest(digest: str, sort: str = ZLI_SORT) -> str:
    return _ZLI_IMAGE_LIST_FOR_DIGEST.format(digest, sort)


def zli_global_search(query: str, sort: str = ZLI_SORT) -> str:
    return _ZLI_GLOBAL_SEARCH.format(query, sort)


def zli_referrers(repo: str, digest: str) -> str:
    return _ZLI_REFERRERS.format(repo, digest)


def zli_cve_list_for_image(image: str, searched: str = "", sort: str = ZLI_SORT) -> str:
    return _ZLI_CVE_LIST_FOR_IMAGE.format(image, searched, sort)


# --- zui: the template literals of src/api.js, ${...} filled in as JavaScript does ----------


def zui_repo_list(page_number: int = 1, page_size: int = 15) -> str:
    offset = (page_number - 1) * page_size
    return (
        "{RepoListWithNewestImage(requestedPage: {limit:"
        + f"{page_size} offset:{offset}"
        + "}){Results {Name LastUpdated Size Platforms {Os Arch}  NewestImage { Tag Vulnerabilities {MaxSeverity Count} Description  Licenses Title Source IsSigned SignatureInfo { Tool IsTrusted Author } Documentation Vendor Labels} IsStarred IsBookmarked StarCount DownloadCount}}}"
    )


def zui_expanded_repo_info(name: str) -> str:
    return (
        '{ExpandedRepoInfo(repo:"'
        + name
        + '"){Images {Manifests {Digest Platform {Os Arch} Size} Vulnerabilities {MaxSeverity Count} Tag LastUpdated Vendor IsDeletable } Summary {Name LastUpdated Size Platforms {Os Arch} Vendors IsStarred IsBookmarked NewestImage {RepoName IsSigned SignatureInfo { Tool IsTrusted Author } Vulnerabilities {MaxSeverity Count} Manifests {Digest} Tag Vendor Title Documentation DownloadCount Source Description Licenses}}}}'
    )


def zui_image(name: str, tag: str) -> str:
    return (
        '{Image(image: "'
        + name
        + ":"
        + tag
        + '"){RepoName IsSigned SignatureInfo { Tool IsTrusted Author } Vulnerabilities {MaxSeverity Count}  Referrers {MediaType ArtifactType Size Digest Annotations{Key Value}} Tag TaggedTimestamp ArtifactType Manifests {ArtifactType Layers {Size Digest} History {Layer {Size Digest} HistoryDescription {CreatedBy EmptyLayer}} Digest ConfigDigest LastUpdated Size Platform {Os Arch} Referrers {MediaType ArtifactType Size Digest Annotations{Key Value}}} Vendor Licenses }}'
    )


def _search_param(search_query: str) -> str:
    return f'query:"{search_query}"' if search_query else 'query:""'


def _pagination_param(page_number: int, page_size: int, sort_by: str) -> str:
    offset = (page_number - 1) * page_size
    return f"requestedPage: {{limit:{page_size} offset:{offset} sortBy: {sort_by}}}"


def _filter_param(
    os: list[str] | None, arch: list[str] | None, signed: bool, bookmarked: bool, starred: bool
) -> str:
    """zui's filterParam: empty without any filter, else each set key after a space (lists
    as JSON.stringify writes them, booleans as JavaScript prints them)."""
    if not (os or arch or signed or bookmarked or starred):
        return ""
    text = ",filter: {"
    if os:
        text += f" Os:{json.dumps(os, separators=(',', ':'))}"
    if arch:
        text += f" Arch:{json.dumps(arch, separators=(',', ':'))}"
    if signed:
        text += " HasToBeSigned: true"
    if bookmarked:
        text += " IsBookmarked: true"
    if starred:
        text += " IsStarred: true"
    return text + "}"


def zui_global_search(
    search_query: str,
    page_number: int = 1,
    page_size: int = 15,
    sort_by: str = "RELEVANCE",
    *,
    os: list[str] | None = None,
    arch: list[str] | None = None,
    signed: bool = False,
    bookmarked: bool = False,
    starred: bool = False,
) -> str:
    return (
        "{GlobalSearch("
        + _search_param(search_query)
        + ", "
        + _pagination_param(page_number, page_size, sort_by)
        + " "
        + _filter_param(os, arch, signed, bookmarked, starred)
        + ") {Page {TotalCount ItemCount} Repos {Name LastUpdated Size Platforms { Os Arch } IsStarred IsBookmarked NewestImage { Tag Vulnerabilities {MaxSeverity Count} Description IsSigned SignatureInfo { Tool IsTrusted Author } Licenses Vendor Labels } StarCount DownloadCount}}}"
    )


def zui_image_suggestions(search_query: str, page_number: int = 1, page_size: int = 15) -> str:
    offset = (page_number - 1) * page_size
    pagination = f"requestedPage: {{limit:{page_size} offset:{offset} sortBy:RELEVANCE}}"
    search = f'query:"{search_query}"' if search_query != "" else 'query:""'
    return "{GlobalSearch(" + search + ", " + pagination + ") {Images {RepoName Tag}}}"


def zui_referrers(repo: str, digest: str, type_: str = "") -> str:
    return (
        '{Referrers(repo: "'
        + repo
        + '" digest: "'
        + digest
        + '" type: "'
        + type_
        + '"){MediaType ArtifactType Size Digest Annotations{Key Value}}}'
    )


def zui_vulnerabilities(name: str, page_number: int = 1, page_size: int = 15) -> str:
    """vulnerabilitiesForRepo with no search term, exclusion or severity."""
    offset = (page_number - 1) * page_size
    head = (
        f'{{CVEListForImage(image: "{name}", requestedPage: {{limit:{page_size} offset:{offset}}}'
    )
    return (
        head
        + "){Tag Page {TotalCount ItemCount} CVEList {Id Title Description Severity Reference PackageList {Name PackagePath InstalledVersion FixedVersion}} Summary {Count UnknownCount LowCount MediumCount HighCount CriticalCount}}}"
    )


# zli's preflight (pkg/cli/client/gql_queries.go): each query it sends must be listed by
# introspection with exactly these arguments, in this order, and its return type known.
ZLI_REQUIRED = {
    "ImageList": (["repo", "requestedPage"], "PaginatedImagesResult"),
    "ImageListForDigest": (["id", "requestedPage"], "PaginatedImagesResult"),
    "BaseImageList": (["image", "digest", "requestedPage"], "PaginatedImagesResult"),
    "DerivedImageList": (["image", "digest", "requestedPage"], "PaginatedImagesResult"),
    "CVEListForImage": (
        ["image", "requestedPage", "searchedCVE", "excludedCVE", "severity"],
        "CVEResultForImage",
    ),
    "CVEDiffListForImages": (
        ["minuend", "subtrahend", "requestedPage", "searchedCVE", "excludedCVE"],
        "CVEDiffResult",
    ),
    "ImageListForCVE": (["id", "filter", "requestedPage"], "PaginatedImagesResult"),
    "ImageListWithCVEFixed": (["id", "image", "filter", "requestedPage"], "PaginatedImagesResult"),
    "Referrers": (["repo", "digest", "type"], "Referrer"),
    "GlobalSearch": (["query", "filter", "requestedPage"], "GlobalSearchResult"),
}
