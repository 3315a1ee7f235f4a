"""`GET /v2/_ocireg/search`: the search index as JSON (docs/search.md).

- `?q=<text>[&n=]`: repositories whose name, and tags whose tag, annotations or artifact
  type contain the text: `{"repositories": [...], "images": [...]}`;
- `?[contains=<text>][&n=][&last=]`: a page of repository summaries in name order, with a
  `Link` to the next page: `{"repositories": [...]}`;
- `?repository=<name>`: one repository's summary and tags: `{"name", "tags", "lastPush",
  "size", "images": [...]}`.

Authenticated and filtered like the catalog: with access control, only the repositories the
caller may read exist here. Answered by the member that receives it: the index is the whole
registry's on a shared metadata store; with separate storage per member, that member asks
the others for their parts and names any that did not answer in `unanswered`
(cluster/gather.py). 404 NOT_FOUND when search is not enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg import names
from ocireg.api.common import decimal, target
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import CATALOG_FILTER_KEY, FORWARDED_KEY, identity_of

if TYPE_CHECKING:
    from ocireg.cluster.gather import ClusterSearch

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


async def search(request: Request) -> Response:
    search: ClusterSearch = request.app.state.search
    if not search.enabled:
        raise RegistryError(ErrorCode.NOT_FOUND, "search is not enabled (extensions.search)")
    query = target(request).query
    readable = request.scope.get(CATALOG_FILTER_KEY)
    identity = identity_of(request.scope)
    # Asked by another member: this member's part alone (cluster/gather.py).
    forwarded = bool(request.scope.get(FORWARDED_KEY))
    # A member asks for one more than its caller's page (cluster/gather.py).
    limit = _limit(query.get("n"), MAX_LIMIT + 1 if forwarded else MAX_LIMIT)
    if "repository" in query:
        repo = names.validate_name(query["repository"])
        if readable is not None and not readable(repo):  # as if it did not exist
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repo[:200]})
        return JSONResponse(await search.summary(repo, identity, forwarded))
    if "q" in query:
        found = await search.query(query["q"], limit, identity, readable, forwarded=forwarded)
        return JSONResponse(
            {
                "repositories": [r.to_json() for r in found.result.repositories],
                "images": [i.to_json() for i in found.result.images],
            }
            | _missing(found.missing)
        )
    contains = query.get("contains", "")
    listing = await search.repositories(
        contains, query.get("last", ""), limit, identity, readable, forwarded=forwarded
    )
    page = listing.repositories
    headers = None
    if listing.more and page:
        args = {"n": limit, "last": page[-1].name} | ({"contains": contains} if contains else {})
        headers = {"link": f'<{request.url.path}?{urlencode(args)}>; rel="next"'}
    body = {"repositories": [r.to_json() for r in page]} | _missing(listing.missing)
    return JSONResponse(body, headers=headers)


def _missing(members: list[str]) -> dict[str, list[str]]:
    """Members of the cluster whose part is not in the answer (they did not answer)."""
    return {"unanswered": members} if members else {}


def _limit(raw: str | None, most: int) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    n = decimal(raw)
    if n is None or not 0 < n <= most:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, detail={"n": raw[:20]})
    return n
