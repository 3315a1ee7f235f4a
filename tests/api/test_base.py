"""end-1: GET /v2/ and the headers every /v2 response carries."""

from __future__ import annotations

import httpx

from tests.support.oci import assert_error, blob_path, manifest_path, push_blob, push_image

API_VERSION = "registry/2.0"


def test_end1_base_is_200_with_api_version_header(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers.get("docker-distribution-api-version") == API_VERSION


def test_end1_head_base_is_200(client: httpx.Client) -> None:
    r = client.head("/v2/")
    assert r.status_code == 200
    assert r.headers.get("docker-distribution-api-version") == API_VERSION
    assert r.content == b""


def test_api_version_header_on_blob_responses(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"api-version-header")
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers.get("docker-distribution-api-version") == API_VERSION


def test_api_version_header_on_error_responses(client: httpx.Client, repo: str) -> None:
    r = client.get(manifest_path(repo, "missing"))
    assert_error(r, 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))
    assert r.headers.get("docker-distribution-api-version") == API_VERSION


def test_common_headers_on_the_fast_routes(client: httpx.Client, repo: str) -> None:
    """Manifest GET/HEAD and blob HEAD are served below the middlewares without Starlette's
    router: they still carry the API version and a request id, and HEAD has no body."""
    image = push_image(client, repo, "v1")
    layer = push_blob(client, repo, b"fast-route-layer")
    responses = [
        client.get(manifest_path(repo, "v1")),
        client.head(manifest_path(repo, "v1")),
        client.head(manifest_path(repo, image.digest)),
        client.head(blob_path(repo, layer)),
    ]
    for r in responses:
        assert r.status_code == 200
        assert r.headers.get("docker-distribution-api-version") == API_VERSION
        assert r.headers.get("x-request-id")
    get, head, by_digest, blob = responses
    assert get.content == image.manifest
    assert get.headers["content-type"] == image.media_type
    for r in (head, by_digest):
        assert r.content == b""
        assert r.headers["content-length"] == str(len(image.manifest))
        assert r.headers["docker-content-digest"] == image.digest
        assert r.headers["etag"] == f'"{image.digest}"'
    assert blob.content == b""
    assert blob.headers["content-length"] == str(len(b"fast-route-layer"))
    assert blob.headers["docker-content-digest"] == layer
