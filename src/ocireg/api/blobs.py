"""Blob endpoints: end-2 (GET/HEAD), end-10 (DELETE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api.common import store_of, target
from ocireg.api.responses import (
    REDIRECTED_BYTES,
    BlobResponse,
    RawParts,
    RawResponse,
    blob_headers,
    parse_range,
    redirect_headers,
)
from ocireg.digest import Digest
from ocireg.registry import ImageStore
from ocireg.target import Target

# Blobs up to this size (config blobs, small layers) are answered whole from the store's
# small-blob cache, in one message: streaming costs a thread hop and a watcher task per
# request (docs/performance.md, "Blob pull").
WHOLE_BODY = 64 << 10


async def get_blob(request: Request) -> Response:
    """end-2: GET|HEAD /v2/<name>/blobs/<digest>."""
    store = store_of(request)
    aim = target(request)
    if request.method == "HEAD":
        return RawResponse(await head_blob_parts(store, aim, True))
    repo, digest = _blob(aim)
    range_header = request.headers.get("range")
    if range_header and ("," in range_header or not range_header.startswith("bytes=")):
        # Several ranges, or a unit other than bytes: HTTP lets a server send the whole blob
        # instead (200); no registry client asks for multipart/byteranges.
        range_header = None
    redirect = not range_header and request.app.state.redirect_blobs
    slots = request.app.state.stream_slots
    if not range_header and not redirect and store.blobs.local_path(repo, digest) is None:
        # Remote storage: the size and the bytes from one request (`BlobStore.download`).
        got = await store.blobs.download(repo, digest)
        if got.body is not None:
            return RawResponse(RawParts(200, blob_headers(digest, got.size), got.body))
        return BlobResponse(store, repo, digest, got.size, slots=slots, pieces=got.pieces)
    info = await store.blobs.stat(repo, digest)
    byte_range = None
    # zot's storage.redirectBlobURL: whole-blob GETs only, as zot does (a ranged GET is
    # a client resuming or probing: answered here, so it never costs a second hop).
    if redirect:
        location = await store.blobs.download_url(repo, digest)
        if location is not None:
            request.scope[REDIRECTED_BYTES] = info.size
            return RawResponse(RawParts(307, redirect_headers(digest, location), b""))
    if range_header:
        byte_range = parse_range(range_header, info.size)
    elif info.size <= WHOLE_BODY:
        body = await store.blobs.get_small(repo, digest)
        return RawResponse(RawParts(200, blob_headers(digest, len(body)), body))
    return BlobResponse(store, repo, digest, info.size, byte_range=byte_range, slots=slots)


def _blob(aim: Target) -> tuple[str, Digest]:
    assert aim.repository is not None and aim.digest is not None, "a blob endpoint"
    return aim.repository, aim.digest


async def head_blob_parts(store: ImageStore, aim: Target, head: bool) -> RawParts:
    """end-2 HEAD, for `get_blob` and for the raw routes (`ocireg.api.dispatch`)."""
    repo, digest = _blob(aim)
    info = await store.blobs.stat(repo, digest)
    return RawParts(200, blob_headers(digest, info.size), b"")


async def delete_blob(request: Request) -> Response:
    """end-10: DELETE /v2/<name>/blobs/<digest>."""
    repo, digest = _blob(target(request))
    await store_of(request).delete_blob(repo, digest)
    return Response(status_code=202, headers={"docker-content-digest": str(digest)})
