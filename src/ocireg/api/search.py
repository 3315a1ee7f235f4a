"""`GET /v2/_ocireg/search`: the search index as JSON (docs/search.md).

- `?q=<text>[&n=]`: repositories whose name, and tags whose tag, annotations or artifact
  type contain the text: `{"repositories": [...], "images": [...]}`;
- `?[contains=<text>][&n=][&last=]`: a page of repository summaries in name order, with a
  `Link` to the next page: `{"repositories": [...]}`;
- `?repository=<name>`: one repository's summary and tags: `{"name", "tags", "lastPush",
  "size", "images": [...]}`.

Authenticated and filtered like the catalog: with access control, only the repositories the
caller may read exist here. Answered by the member that receives it (the index is the whole
registry's on a shared metadata store); 404 NOT_FOUND when search is not enabled.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg import names
from ocireg.api.common import store_of, target
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import CATALOG_FILTER_KEY

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


async def search(request: Request) -> Response:
    search = store_of(request).search
    if not search.enabled:
        raise RegistryError(ErrorCode.NOT_FOUND, "search is not enabled (extensions.search)")
    query = target(request).query
    readable = request.scope.get(CATALOG_FILTER_KEY)
    limit = _limit(query.get("n"))
    if "repository" in query:
        repo = names.validate_name(query["repository"])
        if readable is not None and not readable(repo):  # as if it did not exist
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repo[:200]})
        images = await search.images(repo)
        summary = (await search.summary(repo)).to_json()
        return JSONResponse(summary | {"images": [i.to_json() for i in images]})
    if "q" in query:
        found = await search.query(query["q"], limit, readable)
        return JSONResponse(
            {
                "repositories": [r.to_json() for r in found.repositories],
                "images": [i.to_json() for i in found.images],
            }
        )
    contains = query.get("contains", "")
    page, more = await search.repositories(contains, query.get("last", ""), limit, readable)
    headers = None
    if more:
        args = {"n": limit, "last": page[-1].name} | ({"contains": contains} if contains else {})
        headers = {"link": f'<{request.url.path}?{urlencode(args)}>; rel="next"'}
    return JSONResponse({"repositories": [r.to_json() for r in page]}, headers=headers)


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 0 < int(raw) <= MAX_LIMIT:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, detail={"n": raw[:20]})
    return int(raw)
