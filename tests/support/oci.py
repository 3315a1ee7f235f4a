"""Small helpers for talking the OCI Distribution API from tests over a real httpx.Client.

Setup helpers (`push_blob`, `push_image`, ...) assert success, so a test fails where the
setup broke rather than later; the endpoint under test is always called directly by the
test itself so that its status and headers are asserted where they are read.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# The codes the spec defines (plus the two for server faults).
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
        "UNKNOWN",
        "UNAVAILABLE",
    }
)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


# --- digests and blobs -------------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512_digest(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def random_bytes(size: int = 1024) -> bytes:
    return os.urandom(size)


def random_blob(size: int = 1024) -> tuple[bytes, str]:
    """Fresh random bytes and their sha256 digest (random, so no test sees another's blob)."""
    data = random_bytes(size)
    return data, sha256_digest(data)


def absent_digest() -> str:
    """A well-formed sha256 digest that no test has pushed."""
    return sha256_digest(b"absent-" + os.urandom(16))


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """An OCI descriptor for `data` (sha256)."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


# --- names ---------------------------------------------------------------------------------


def unique_repo(prefix: str = "test") -> str:
    """A fresh repository name matching the spec's name grammar.

    The API tests share one server, so every test works in its own repository.
    """
    return f"{prefix.lower()}/{uuid.uuid4().hex[:16]}"


def blob_path(repo: str, digest: str) -> str:
    return f"/v2/{repo}/blobs/{digest}"


def manifest_path(repo: str, reference: str) -> str:
    return f"/v2/{repo}/manifests/{reference}"


def uploads_path(repo: str) -> str:
    return f"/v2/{repo}/blobs/uploads/"


# --- error envelope ------------------------------------------------------------------------


def assert_error(
    response: httpx.Response,
    status: int | Collection[int],
    code: str | Collection[str] | None,
) -> dict[str, Any]:
    """Check an error response: status, JSON content type, the spec's envelope and the code.

    `code=None` accepts any code spelt as the spec requires (upper case and underscores), for
    cases where neither the spec nor the issue fixes the code. Returns the first error object.
    """
    statuses = {status} if isinstance(status, int) else set(status)
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url}: expected {sorted(statuses)}, "
        f"got {response.status_code}: {response.text[:500]!r}"
    )
    ctype = response.headers.get("content-type", "")
    assert ctype.split(";")[0].strip() == "application/json", (
        f"error content-type is {ctype!r}, body {response.text[:300]!r}"
    )
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
    assert body["errors"], "the errors list must not be empty"
    for err in body["errors"]:
        assert isinstance(err, dict), err
        assert isinstance(err.get("code"), str), err
        assert isinstance(err.get("message"), str), err
        assert set(err) <= {"code", "message", "detail"}, f"unexpected keys in {err}"
    first: dict[str, Any] = body["errors"][0]
    if code is None:
        assert re.fullmatch(r"[A-Z_]+", first["code"]), first
    else:
        codes = {code} if isinstance(code, str) else set(code)
        assert first["code"] in codes, f"expected code in {sorted(codes)}, got {first}"
    return first


# --- uploads -------------------------------------------------------------------------------


def start_upload(client: httpx.Client, repo: str, base: str = "") -> str:
    """end-4a: open an upload session and return its location (`base`: the server's URL,
    for a client without a base URL of its own)."""
    r = client.post(base + uploads_path(repo))
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert location
    return location


def push_blob_monolithic(
    client: httpx.Client,
    repo: str,
    data: bytes,
    digest: str | None = None,
    *,
    single_post: bool = True,
) -> httpx.Response:
    """Upload `data` in one request: POST ?digest= (end-4b), or POST then PUT (end-4a + end-6).

    Returns the final response unchecked, so tests can assert on it.
    """
    digest = digest or sha256_digest(data)
    if single_post:
        return client.post(
            uploads_path(repo),
            params={"digest": digest},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
    location = start_upload(client, repo)
    # Merged, not replaced: distribution keeps its upload state in the location's query.
    return client.put(
        httpx.URL(location).copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    """Push `data` as a blob (setup helper: asserts 201) and return its digest."""
    r = push_blob_monolithic(client, repo, data, single_post=False)
    assert r.status_code == 201, f"blob push failed: {r.status_code} {r.text}"
    return sha256_digest(data)


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def patch_chunk(
    client: httpx.Client, location: str, chunk: bytes, start: int | None = None
) -> httpx.Response:
    """end-5: PATCH one chunk; with `start`, send `Content-Range: start-end` (inclusive)."""
    headers = {"Content-Type": "application/octet-stream"}
    if start is not None:
        headers["Content-Range"] = f"{start}-{start + len(chunk) - 1}"
    return client.patch(location, content=chunk, headers=headers)


def push_blob_chunked(
    client: httpx.Client,
    repo: str,
    data: bytes,
    chunk_size: int,
    *,
    content_range: bool = True,
) -> httpx.Response:
    """POST, PATCH each chunk (with or without Content-Range), PUT ?digest= with no body.

    Asserts every intermediate step (202, Range, Location) and returns the final PUT response.
    """
    location = start_upload(client, repo)
    offset = 0
    for chunk in chunks_of(data, chunk_size):
        r = patch_chunk(client, location, chunk, offset if content_range else None)
        assert r.status_code == 202, f"PATCH at {offset}: {r.status_code} {r.text}"
        offset += len(chunk)
        assert r.headers.get("range") == f"0-{offset - 1}", r.headers
        location = r.headers["location"]
    return client.put(location, params={"digest": sha256_digest(data)})


# --- manifests -----------------------------------------------------------------------------


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def image_manifest(
    config: Mapping[str, Any],
    layers: Iterable[Mapping[str, Any]],
    *,
    media_type: str = OCI_MANIFEST,
    subject: Mapping[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> tuple[bytes, str]:
    """Serialise an image manifest; returns (body, sha256 digest)."""
    content = {"config": dict(config), "layers": [dict(layer) for layer in layers]}
    return _manifest_document(media_type, content, subject, artifact_type, annotations)


def image_index(
    manifests: Iterable[Mapping[str, Any]],
    *,
    media_type: str = OCI_INDEX,
    subject: Mapping[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> tuple[bytes, str]:
    """Serialise an image index (or Docker manifest list); returns (body, sha256 digest)."""
    content = {"manifests": [dict(m) for m in manifests]}
    return _manifest_document(media_type, content, subject, artifact_type, annotations)


def _manifest_document(
    media_type: str,
    content: Mapping[str, Any],
    subject: Mapping[str, Any] | None,
    artifact_type: str | None,
    annotations: Mapping[str, str] | None,
) -> tuple[bytes, str]:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc.update(content)
    if subject is not None:
        doc["subject"] = dict(subject)
    if annotations is not None:
        doc["annotations"] = dict(annotations)
    body = encode_json(doc)
    return body, sha256_digest(body)


def push_manifest(
    client: httpx.Client, repo: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    """end-7: PUT a manifest body as is (unchecked)."""
    return client.put(manifest_path(repo, ref), content=body, headers={"Content-Type": media_type})


def small_image(nonce: str = "") -> tuple[bytes, str, list[bytes]]:
    """An image manifest with one small layer, its digest and its blobs; the same bytes for
    the same `nonce` (to push the same image to two registries)."""
    config = encode_json({"architecture": "amd64", "os": "linux", "nonce": nonce})
    layer = f"layer {nonce}".encode() * 8
    body, digest = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    return body, digest, [config, layer]


def push_small_image(
    client: httpx.Client, repo: str, ref: str, nonce: str = ""
) -> tuple[httpx.Response, bytes]:
    """`small_image(nonce)`: its blobs pushed (asserted), then its manifest put under `ref`
    (unchecked); the manifest's answer and the manifest."""
    body, _, blobs = small_image(nonce or uuid.uuid4().hex)
    for blob in blobs:
        push_blob(client, repo, blob)
    return push_manifest(client, repo, ref, body), body


@dataclass
class Image:
    """What `push_image` pushed, for tests to compare against."""

    repo: str
    manifest: bytes
    digest: str
    media_type: str
    config: bytes
    layers: list[bytes] = field(default_factory=list)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)} | (
            extra
        )


def push_image(
    client: httpx.Client,
    repo: str,
    ref: str | None = None,
    *,
    layers: int = 1,
    layer_size: int = 512,
    config: bytes | None = None,
    config_media_type: str = OCI_CONFIG,
    layer_media_type: str = OCI_LAYER,
    media_type: str = OCI_MANIFEST,
    subject: Mapping[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """Push config and layer blobs and a manifest under `ref` (default: by digest).

    Setup helper: asserts each push succeeded.
    """
    if config is None:
        config = encode_json({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex})
    push_blob(client, repo, config)
    layer_bytes = [random_bytes(layer_size) for _ in range(layers)]
    for layer in layer_bytes:
        push_blob(client, repo, layer)
    body, digest = image_manifest(
        descriptor(config_media_type, config),
        [descriptor(layer_media_type, layer) for layer in layer_bytes],
        media_type=media_type,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
    r = push_manifest(client, repo, ref or digest, body, media_type)
    assert r.status_code == 201, f"manifest push failed: {r.status_code} {r.text}"
    return Image(repo, body, digest, media_type, config, layer_bytes)


def push_artifact(
    client: httpx.Client,
    repo: str,
    subject: Image | None,
    artifact_type: str | None,
    *,
    config_media_type: str = OCI_EMPTY,
    annotations: Mapping[str, str] | None = None,
    ref: str | None = None,
) -> Image:
    """Push an artifact manifest (empty config unless told otherwise) that refers to `subject`."""
    config = b"{}" if config_media_type == OCI_EMPTY else encode_json({"nonce": uuid.uuid4().hex})
    return push_image(
        client,
        repo,
        ref,
        config=config,
        config_media_type=config_media_type,
        layer_media_type="application/vnd.example.payload",
        subject=subject.descriptor() if subject else None,
        artifact_type=artifact_type,
        annotations=annotations,
    )


# --- pagination ----------------------------------------------------------------------------


def next_link(response: httpx.Response) -> str | None:
    """The target of a `Link: <...>; rel="next"` header, or None."""
    link: str | None = response.headers.get("link")
    if not link:
        return None
    for part in link.split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            url = url.strip()
            assert url.startswith("<") and url.endswith(">"), link
            return url[1:-1]
    return None


# --- raw HTTP ------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(
    base_url: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> RawResponse:
    """Send `target` byte for byte: httpx would normalise `..` segments away before sending."""
    parts = urlsplit(base_url)
    assert parts.hostname and parts.port
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def assert_image_pulls(client: httpx.Client, image: Image, ref: str) -> None:
    """The image's manifest by `ref` and every blob pull with the pushed bytes."""
    r = client.get(manifest_path(image.repo, ref), headers={"Accept": image.media_type})
    assert r.status_code == 200, r.text
    assert r.content == image.manifest
    for blob in [image.config, *image.layers]:
        got = client.get(blob_path(image.repo, sha256_digest(blob)))
        assert got.status_code == 200 and got.content == blob
