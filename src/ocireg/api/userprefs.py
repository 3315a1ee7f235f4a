"""zot's `userprefs` extension, `PUT /v2/_zot/ext/userprefs?action=<a>&repo=<name>`: a
logged-in user stars or bookmarks a repository they may read, or takes the mark back (each
call toggles). zui's star and bookmark buttons send it; the search API then answers
`StarCount`, `IsStarred`, `IsBookmarked`, `StarredRepos` and `BookmarkedRepos` from the marks.

As in zot v2.1.20 it is routed when both `extensions.search` and `extensions.ui` are on
(zot's `AreUserPrefsEnabled`), authenticated and authorized as the search endpoint is (no
repository in the path: `Kind.CATALOG`), and answers, in zot's order of checks:
400 without `action`, for an action other than `toggleStar`/`toggleBookmark`, or without
`repo`; 404 for `repo=` (empty); 403 for an anonymous caller or a repository the caller may
not read (whether it exists or not); 404 for a repository that does not exist; else 200.
The marks are kept in the metadata store (`MetaStore.toggle_mark`), by user name.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api.common import store_of, target
from ocireg.api.graphql.endpoint import access_of
from ocireg.config import Config
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import identity_of
from ocireg.meta.base import BOOKMARK, STAR
from ocireg.names import validate_name
from ocireg.target import Endpoint

ACTIONS = {"toggleStar": STAR, "toggleBookmark": BOOKMARK}


def userprefs_enabled(config: Config) -> bool:
    """zot's `AreUserPrefsEnabled`: search and the web pages both on."""
    return config.search.enabled and config.ui.enabled


def userprefs_routes(config: Config) -> dict[tuple[Endpoint, str], Any]:
    """The route to add to the API's table: none unless `userprefs_enabled`."""
    if not userprefs_enabled(config):
        return {}
    return {(Endpoint.USERPREFS, "PUT"): toggle}


async def toggle(request: Request) -> Response:
    query = target(request).query
    kind = ACTIONS.get(_required(query, "action"))
    if kind is None:
        actions = {"actions": [*ACTIONS]}
        raise RegistryError(ErrorCode.QUERY_INVALID, "unknown action", detail=actions)
    repo = _required(query, "repo")
    if not repo:
        raise RegistryError(ErrorCode.NAME_UNKNOWN)
    identity = identity_of(request.scope)
    if identity.user is None:
        raise RegistryError(ErrorCode.DENIED, "anonymous users have no preferences")
    try:
        validate_name(repo)
    except RegistryError:
        raise RegistryError(ErrorCode.NAME_UNKNOWN) from None  # such a repository cannot exist
    if not access_of(request).read(repo):
        raise RegistryError(ErrorCode.DENIED)  # before existence: no word on whether it does
    store = store_of(request)
    if not await store.repos.exists(repo):
        raise RegistryError(ErrorCode.NAME_UNKNOWN)
    await store.meta.toggle_mark(identity.user, kind, repo)
    return Response(status_code=200)


def _required(query: Any, key: str) -> str:
    value = query.get(key)
    if value is None:
        raise RegistryError(ErrorCode.QUERY_INVALID, f"{key} is required", detail={"missing": key})
    return str(value)
