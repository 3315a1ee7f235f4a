"""end-1: GET /v2/ and the headers every /v2 response carries."""

from __future__ import annotations

import httpx

from tests.support.oci import assert_error, manifest_path, push_blob

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
