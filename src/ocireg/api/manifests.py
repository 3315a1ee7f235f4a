"""Manifest endpoints: end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api.common import limited_body, repo_name, store_of, target
from ocireg.api.responses import RawParts, RawResponse, manifest_headers
from ocireg.identity import identity_of
from ocireg.registry import ImageStore
from ocireg.registry.manifests import MAX_MANIFEST_BYTES
from ocireg.target import Target


def _reference(aim: Target) -> str:
    assert aim.reference is not None, "a manifest endpoint always has a reference"
    return aim.reference


async def get_manifest(request: Request) -> Response:
    """end-3: GET|HEAD /v2/<name>/manifests/<reference>; the bytes and media type as pushed."""
    parts = await get_manifest_parts(store_of(request), target(request), request.method == "HEAD")
    return RawResponse(parts)


async def get_manifest_parts(store: ImageStore, aim: Target, head: bool) -> RawParts:
    """end-3, for `get_manifest` and for the raw routes (`ocireg.api.dispatch`)."""
    assert aim.repository is not None
    manifest = await store.get_manifest(aim.repository, _reference(aim))
    if store.pulls is not None and not head:
        store.pulls.saw(aim.repository, str(manifest.digest))
    headers = manifest_headers(manifest.digest, len(manifest.body), manifest.media_type)
    return RawParts(200, headers, b"" if head else manifest.body)


async def put_manifest(request: Request) -> Response:
    """end-7: PUT /v2/<name>/manifests/<reference>."""
    repo = repo_name(request)
    reference = _reference(target(request))
    store = store_of(request)
    # The body first: the quota's lock is the whole instance's, and a slow client must not
    # hold it while its bytes trickle in.
    async with limited_body(request, MAX_MANIFEST_BYTES) as body, store.quota.admit(repo):
        result = await store.put_manifest(
            repo, reference, body, request.headers.get("content-type"), by=_user(request)
        )
    headers = {
        "location": f"/v2/{repo}/manifests/{result.digest}",
        "docker-content-digest": str(result.digest),
    }
    if result.subject is not None:
        headers["oci-subject"] = str(result.subject)
    return Response(status_code=201, headers=headers)


def _user(request: Request) -> str:
    """Who pushes, as zot notes a pusher: the user name, "" for an anonymous caller."""
    return identity_of(request.scope).user or ""


async def delete_manifest(request: Request) -> Response:
    """end-9: DELETE /v2/<name>/manifests/<reference> (a tag removes only the tag)."""
    repo = repo_name(request)
    await store_of(request).delete_manifest(repo, _reference(target(request)))
    return Response(status_code=202)
