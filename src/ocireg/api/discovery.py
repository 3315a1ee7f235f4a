"""Listing endpoints: end-8a/8b (tags), the catalog, end-12a/12b (referrers)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.api.common import repo_name, store_of, target
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import CATALOG_FILTER_KEY
from ocireg.registry.manifests import OCI_INDEX


def _page(request: Request, items: list[str]) -> tuple[list[str], str | None]:
    """Apply `n` and `last`; return the page and the Link header for the next one."""
    params = target(request).query
    last = params.get("last")
    if last:
        items = [i for i in items if i > last]  # `last` need not exist; byte order as sorted
    raw_n = params.get("n")
    if raw_n is None or raw_n == "":
        return items, None
    if not raw_n.isdigit():
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, detail={"n": raw_n[:20]})
    n = int(raw_n)
    page = items[:n]
    link = None
    if n > 0 and len(items) > n:
        query = urlencode({"n": n, "last": page[-1]})
        link = f'<{request.url.path}?{query}>; rel="next"'
    return page, link


def _listing(body: dict[str, object], link: str | None) -> Response:
    return JSONResponse(body, headers={"link": link} if link else None)


async def list_tags(request: Request) -> Response:
    """end-8a/end-8b: GET /v2/<name>/tags/list[?n=&last=]."""
    repo = repo_name(request)
    tags, link = _page(request, await store_of(request).tags(repo))
    return _listing({"name": repo, "tags": tags}, link)


async def catalog(request: Request) -> Response:
    """GET /v2/_catalog[?n=&last=]."""
    repos = await store_of(request).catalog()
    visible = request.scope.get(CATALOG_FILTER_KEY)
    if visible is not None:  # access control: only what the caller may read, then pages
        repos = [r for r in repos if visible(r)]
    repos, link = _page(request, repos)
    return _listing({"repositories": repos}, link)


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
