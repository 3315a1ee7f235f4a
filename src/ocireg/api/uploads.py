"""Blob upload endpoints: end-4a/4b (POST), end-11 (mount), end-5 (PATCH), end-6 (PUT),
end-13 (GET status) and DELETE to cancel."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api.common import decimal, repo_name, store_of, target, with_body
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import ImageStore

# What the registry answers for a chunk that does not continue the session: 416 with the
# session's `Range`, which only this layer puts in a header.
_RANGE_CODES = frozenset({ErrorCode.UPLOAD_RANGE_INVALID, ErrorCode.RANGE_INVALID})
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")


def _session_headers(repo: str, session: str, size: int) -> dict[str, str]:
    return {
        "location": f"/v2/{repo}/blobs/uploads/{session}",
        "range": _range(size),
        "docker-upload-uuid": session,
    }


def _range(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def _blob_created(repo: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={"location": f"/v2/{repo}/blobs/{digest}", "docker-content-digest": str(digest)},
    )


def _session(request: Request) -> str:
    session = target(request).session
    assert session is not None, "an upload endpoint always names its session"
    return session


async def start_upload(request: Request) -> Response:
    """end-4a/end-4b/end-11: POST /v2/<name>/blobs/uploads/[?digest=|?mount=&from=]."""
    aim = target(request)
    repo = repo_name(request)
    store = store_of(request)
    # The mount source is the one authorization checked: both read the classification.
    # Not there to mount: fall back to an ordinary upload session (202), as the spec allows.
    mount, source = aim.mount, aim.mount_from
    if mount is not None and source is not None and await store.blobs.mount(repo, source, mount):
        return _blob_created(repo, mount)
    raw_digest = aim.query.get("digest")
    if raw_digest is not None:
        digest = Digest.parse(raw_digest)
        await with_body(request, lambda body: store.uploads.put(repo, digest, body))
        return _blob_created(repo, digest)
    session = await store.uploads.start(repo)
    return Response(status_code=202, headers=_session_headers(repo, session, 0))


async def patch_upload(request: Request) -> Response:
    """end-5: PATCH /v2/<name>/blobs/uploads/<reference>: append a chunk."""
    repo = repo_name(request)
    session = _session(request)
    store = store_of(request)
    start, expected = await _chunk_range(request, store, repo, session)
    with _where_it_stands():
        size = await with_body(
            request, lambda body: store.uploads.append(repo, session, body, start, expected)
        )
    return Response(status_code=202, headers=_session_headers(repo, session, size))


async def _chunk_range(
    request: Request, store: ImageStore, repo: str, session: str
) -> tuple[int | None, int | None]:
    """(start, length) of the chunk a Content-Range announces; (None, None) without one."""
    content_range = request.headers.get("content-range")
    if not content_range:
        return None, None
    m = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
    first = last = None
    if m is not None:  # numbers past int64 are malformed, as zot reads them
        first, last = decimal(m.group(1)), decimal(m.group(2))
    if first is None or last is None or last < first:
        size = await store.uploads.size(repo, session)
        raise _out_of_range(size, "malformed Content-Range", content_range)
    length = decimal(request.headers.get("content-length") or "")
    if length is not None and length != last - first + 1:
        size = await store.uploads.size(repo, session)
        raise _out_of_range(size, "Content-Range does not match Content-Length", content_range)
    return first, last - first + 1


@contextlib.contextmanager
def _where_it_stands() -> Iterator[None]:
    """A range error answered with the `Range` the session has, so the client can resume."""
    try:
        yield
    except RegistryError as err:
        if err.code in _RANGE_CODES and isinstance(err.detail, dict) and "size" in err.detail:
            err.headers["range"] = _range(int(err.detail.get("size", 0)))
        raise


def _out_of_range(size: int, why: str, content_range: str) -> RegistryError:
    """416 with the `Range` the session has, so the client can resume from it."""
    return RegistryError(
        ErrorCode.UPLOAD_RANGE_INVALID,
        why,
        {"content-range": content_range[:100], "size": size},
        headers={"range": _range(size)},
    )


async def complete_upload(request: Request) -> Response:
    """end-6: PUT /v2/<name>/blobs/uploads/<reference>?digest=<digest>."""
    repo = repo_name(request)
    session = _session(request)
    store = store_of(request)
    raw_digest = target(request).query.get("digest")
    if not raw_digest:
        await store.uploads.size(repo, session)  # an unknown session is 404 first
        raise RegistryError(ErrorCode.DIGEST_INVALID, "digest query parameter is required")
    digest = Digest.parse(raw_digest)
    # A last chunk may come with this PUT; its Content-Range, if any, is checked as a PATCH's
    # (not on a PUT without a body: some clients repeat the last PATCH's range there).
    start = expected = None
    if request.headers.get("content-length") != "0":
        start, expected = await _chunk_range(request, store, repo, session)
    with _where_it_stands():
        await with_body(
            request,
            lambda body: store.uploads.complete(repo, session, digest, body, start, expected),
        )
    return _blob_created(repo, digest)


async def get_upload(request: Request) -> Response:
    """end-13: GET /v2/<name>/blobs/uploads/<reference>: where the session stands."""
    repo = repo_name(request)
    session = _session(request)
    size = await store_of(request).uploads.size(repo, session)
    return Response(status_code=204, headers=_session_headers(repo, session, size))


async def cancel_upload(request: Request) -> Response:
    """DELETE /v2/<name>/blobs/uploads/<reference>: abandon the session."""
    await store_of(request).uploads.cancel(repo_name(request), _session(request))
    return Response(status_code=204)
