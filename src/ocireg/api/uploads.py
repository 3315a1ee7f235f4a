"""Blob upload endpoints: end-4a/4b (POST), end-11 (mount), end-5 (PATCH), end-6 (PUT),
end-13 (GET status) and DELETE to cancel."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from ocireg import names
from ocireg.api.common import repo_name, store_of, with_body
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError

_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _session_headers(repo: str, session: str, size: int) -> dict[str, str]:
    return {
        "location": f"/v2/{repo}/blobs/uploads/{session}",
        "range": f"0-{max(size - 1, 0)}",
        "docker-upload-uuid": session,
    }


def _blob_created(repo: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={"location": f"/v2/{repo}/blobs/{digest}", "docker-content-digest": str(digest)},
    )


async def start_upload(request: Request) -> Response:
    """end-4a/end-4b/end-11: POST /v2/<name>/blobs/uploads/[?digest=|?mount=&from=]."""
    repo = repo_name(request)
    store = store_of(request)
    params = request.query_params
    mount, source = params.get("mount"), params.get("from")
    if mount is not None and source:
        digest = Digest.parse(mount)
        names.validate_name(source)
        if await store.blobs.mount(repo, source, digest):
            return _blob_created(repo, digest)
        # Not there to mount: fall back to an ordinary upload session (202), as the spec allows.
    session = await store.uploads.start(repo)
    if params.get("digest") is not None:
        digest = Digest.parse(params["digest"])
        await with_body(request, lambda body: store.uploads.complete(repo, session, digest, body))
        return _blob_created(repo, digest)
    return Response(status_code=202, headers=_session_headers(repo, session, 0))


async def patch_upload(request: Request) -> Response:
    """end-5: PATCH /v2/<name>/blobs/uploads/<reference>: append a chunk."""
    repo = repo_name(request)
    session = request.path_params["session"]
    store = store_of(request)
    start = expected = None
    content_range = request.headers.get("content-range")
    if content_range:
        m = _CONTENT_RANGE_RE.match(content_range.strip())
        if m is None or int(m.group(2)) < int(m.group(1)):
            size = await store.uploads.size(repo, session)
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                "malformed Content-Range",
                {"content-range": content_range[:100]},
                status=416,
                headers={"Range": f"0-{max(size - 1, 0)}"},
            )
        start = int(m.group(1))
        expected = int(m.group(2)) - start + 1
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) != expected:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                "Content-Range does not match Content-Length",
                status=416,
                headers={"Range": f"0-{max(await store.uploads.size(repo, session) - 1, 0)}"},
            )
    size = await with_body(
        request, lambda body: store.uploads.append(repo, session, body, start, expected)
    )
    return Response(status_code=202, headers=_session_headers(repo, session, size))


async def complete_upload(request: Request) -> Response:
    """end-6: PUT /v2/<name>/blobs/uploads/<reference>?digest=<digest>."""
    repo = repo_name(request)
    session = request.path_params["session"]
    store = store_of(request)
    raw_digest = request.query_params.get("digest")
    if not raw_digest:
        await store.uploads.size(repo, session)  # an unknown session is 404 first
        raise RegistryError(ErrorCode.DIGEST_INVALID, "digest query parameter is required")
    digest = Digest.parse(raw_digest)
    await with_body(request, lambda body: store.uploads.complete(repo, session, digest, body))
    return _blob_created(repo, digest)


async def get_upload(request: Request) -> Response:
    """end-13: GET /v2/<name>/blobs/uploads/<reference>: where the session stands."""
    repo = repo_name(request)
    session = request.path_params["session"]
    size = await store_of(request).uploads.size(repo, session)
    return Response(status_code=204, headers=_session_headers(repo, session, size))


async def cancel_upload(request: Request) -> Response:
    """DELETE /v2/<name>/blobs/uploads/<reference>: abandon the session."""
    repo = repo_name(request)
    await store_of(request).uploads.cancel(repo, request.path_params["session"])
    return Response(status_code=204)
