"""Manifest endpoints: end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api.common import read_limited, repo_name, store_of
from ocireg.registry.manifests import MAX_MANIFEST_BYTES


def _reference(request: Request) -> str:
    return str(request.path_params["reference"])


async def get_manifest(request: Request) -> Response:
    """end-3: GET|HEAD /v2/<name>/manifests/<reference>; the bytes and media type as pushed."""
    repo = repo_name(request)
    manifest = await store_of(request).get_manifest(repo, _reference(request))
    headers = {"docker-content-digest": str(manifest.digest), "etag": f'"{manifest.digest}"'}
    if request.method == "HEAD":
        headers["content-length"] = str(len(manifest.body))
        return Response(b"", headers=headers, media_type=manifest.media_type)
    return Response(manifest.body, headers=headers, media_type=manifest.media_type)


async def put_manifest(request: Request) -> Response:
    """end-7: PUT /v2/<name>/manifests/<reference>."""
    repo = repo_name(request)
    reference = _reference(request)
    body = await read_limited(request, MAX_MANIFEST_BYTES)
    result = await store_of(request).put_manifest(
        repo, reference, body, request.headers.get("content-type")
    )
    headers = {
        "location": f"/v2/{repo}/manifests/{result.digest}",
        "docker-content-digest": str(result.digest),
    }
    if result.subject is not None:
        headers["oci-subject"] = str(result.subject)
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request) -> Response:
    """end-9: DELETE /v2/<name>/manifests/<reference> (a tag removes only the tag)."""
    repo = repo_name(request)
    await store_of(request).delete_manifest(repo, _reference(request))
    return Response(status_code=202)
