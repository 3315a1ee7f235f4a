"""Blob endpoints: end-2 (GET/HEAD), end-10 (DELETE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api.common import repo_name, store_of
from ocireg.api.responses import BlobResponse, parse_range
from ocireg.digest import Digest


async def get_blob(request: Request) -> Response:
    """end-2: GET|HEAD /v2/<name>/blobs/<digest>."""
    repo = repo_name(request)
    digest = Digest.parse(request.path_params["digest"])
    store = store_of(request)
    info = await store.blobs.stat(repo, digest)
    head = request.method == "HEAD"
    byte_range = None
    range_header = request.headers.get("range")
    if range_header and not head:
        byte_range = parse_range(range_header, info.size)
    return BlobResponse(
        store,
        repo,
        digest,
        info.size,
        {"docker-content-digest": str(digest), "etag": f'"{digest}"'},
        head=head,
        byte_range=byte_range,
    )


async def delete_blob(request: Request) -> Response:
    """end-10: DELETE /v2/<name>/blobs/<digest>."""
    repo = repo_name(request)
    digest = Digest.parse(request.path_params["digest"])
    await store_of(request).blobs.delete(repo, digest)
    return Response(status_code=202, headers={"docker-content-digest": str(digest)})
