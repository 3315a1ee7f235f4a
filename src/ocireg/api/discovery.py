"""Listing endpoints: end-8a/8b (tags), the catalog, end-12a/12b (referrers)."""

from __future__ import annotations

import bisect
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.api.common import decimal, repo_name, store_of, target
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import CATALOG_FILTER_KEY
from ocireg.registry.manifests import OCI_INDEX


def _paging(request: Request) -> tuple[str | None, int | None]:
    """`last` and `n` of a listing request (n None: no limit)."""
    params = target(request).query
    raw_n = params.get("n")
    if raw_n is None or raw_n == "":
        return params.get("last") or None, None
    n = decimal(raw_n)
    if n is None:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, detail={"n": raw_n[:20]})
    return params.get("last") or None, n


def _listing(
    request: Request, body: dict[str, object], page: list[str], n: int | None, more: bool
) -> Response:
    """The JSON answer, with a `Link` to the next page when one follows."""
    headers = None
    if n and more:
        query = urlencode({"n": n, "last": page[-1]})
        headers = {"link": f'<{request.url.path}?{query}>; rel="next"'}
    return JSONResponse(body, headers=headers)


async def list_tags(request: Request) -> Response:
    """end-8a/end-8b: GET /v2/<name>/tags/list[?n=&last=]."""
    repo = repo_name(request)
    last, n = _paging(request)
    tags = await store_of(request).tags(repo)  # sorted: the page starts by bisection
    rest = tags[bisect.bisect_right(tags, last) :] if last else tags
    page = rest if n is None else rest[:n]
    return _listing(request, {"name": repo, "tags": page}, page, n, len(rest) > len(page))


async def catalog(request: Request) -> Response:
    """GET /v2/_catalog[?n=&last=]: with access control, only what the caller may read,
    and pages count only those."""
    last, n = _paging(request)
    visible = request.scope.get(CATALOG_FILTER_KEY)
    page, more = await store_of(request).catalog_page(last, n, visible)
    return _listing(request, {"repositories": page}, page, n, more)


async def list_referrers(request: Request) -> Response:
    """end-12a/end-12b: GET /v2/<name>/referrers/<digest>[?artifactType=]."""
    repo = repo_name(request)
    aim = target(request)
    assert aim.digest is not None, "a referrers endpoint always names its subject"
    manifests = await store_of(request).referrers(repo, aim.digest)
    headers = {}
    artifact_type = aim.query.get("artifactType")
    if artifact_type:
        manifests = [m for m in manifests if m.get("artifactType") == artifact_type]
        headers["oci-filters-applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return JSONResponse(body, headers=headers, media_type=OCI_INDEX)
