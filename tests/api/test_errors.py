"""Errors across endpoints: the issue's status table, invalid names, path traversal, methods.

Every error is the spec's JSON envelope; `assert_error` checks status, code and shape.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.oci import (
    MAX_MANIFEST_BYTES,
    OCI_CONFIG,
    OCI_LAYER,
    absent_digest,
    assert_error,
    blob_path,
    descriptor,
    image_manifest,
    manifest_path,
    patch_chunk,
    push_blob,
    push_blob_monolithic,
    push_image,
    push_manifest,
    random_blob,
    raw_request,
    sha256_digest,
    start_upload,
    uploads_path,
)
from tests.support.server import RegistryProcess

# --- the status table of the issue, one scenario per code ----------------------------------

Scenario = Callable[[httpx.Client, str], httpx.Response]


def blob_unknown(client: httpx.Client, repo: str) -> httpx.Response:
    push_blob(client, repo, b"exists")
    return client.get(blob_path(repo, absent_digest()))


def blob_upload_invalid_range(client: httpx.Client, repo: str) -> httpx.Response:
    location = start_upload(client, repo)
    return patch_chunk(client, location, b"abc", start=10)


def blob_upload_unknown(client: httpx.Client, repo: str) -> httpx.Response:
    start_upload(client, repo)
    return client.get(f"{uploads_path(repo)}{uuid.uuid4()}")


def digest_invalid(client: httpx.Client, repo: str) -> httpx.Response:
    return push_blob_monolithic(client, repo, b"content", absent_digest())


def manifest_blob_unknown(client: httpx.Client, repo: str) -> httpx.Response:
    config = b"{}"
    push_blob(client, repo, config)
    body, _ = image_manifest(
        descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, b"missing" + uuid.uuid4().bytes)]
    )
    return push_manifest(client, repo, "v1", body)


def manifest_invalid(client: httpx.Client, repo: str) -> httpx.Response:
    return push_manifest(client, repo, "v1", b"{")


def manifest_too_large(client: httpx.Client, repo: str) -> httpx.Response:
    body = json.dumps({"schemaVersion": 2, "pad": "x" * MAX_MANIFEST_BYTES}).encode()
    return push_manifest(client, repo, "v1", body)


def manifest_unknown(client: httpx.Client, repo: str) -> httpx.Response:
    push_image(client, repo, "v1")
    return client.get(manifest_path(repo, "v2"))


def name_invalid(client: httpx.Client, repo: str) -> httpx.Response:
    return client.get(f"/v2/{repo.upper()}/tags/list")


def name_unknown(client: httpx.Client, repo: str) -> httpx.Response:
    return client.get(f"/v2/{repo}/tags/list")


def unsupported(client: httpx.Client, repo: str) -> httpx.Response:
    push_image(client, repo, "v1")
    return client.request("PATCH", manifest_path(repo, "v1"), content=b"{}")


STATUS_TABLE: dict[str, tuple[Scenario, int, str]] = {
    "BLOB_UNKNOWN": (blob_unknown, 404, "BLOB_UNKNOWN"),
    "BLOB_UPLOAD_INVALID-range": (blob_upload_invalid_range, 416, "BLOB_UPLOAD_INVALID"),
    "BLOB_UPLOAD_UNKNOWN": (blob_upload_unknown, 404, "BLOB_UPLOAD_UNKNOWN"),
    "DIGEST_INVALID": (digest_invalid, 400, "DIGEST_INVALID"),
    "MANIFEST_BLOB_UNKNOWN": (manifest_blob_unknown, 400, "MANIFEST_BLOB_UNKNOWN"),
    "MANIFEST_INVALID": (manifest_invalid, 400, "MANIFEST_INVALID"),
    "MANIFEST_INVALID-too-large": (manifest_too_large, 413, "MANIFEST_INVALID"),
    "MANIFEST_UNKNOWN": (manifest_unknown, 404, "MANIFEST_UNKNOWN"),
    "NAME_INVALID": (name_invalid, 400, "NAME_INVALID"),
    "NAME_UNKNOWN": (name_unknown, 404, "NAME_UNKNOWN"),
    "UNSUPPORTED": (unsupported, 405, "UNSUPPORTED"),
}


@pytest.mark.parametrize("case", sorted(STATUS_TABLE))
def test_error_status_table(client: httpx.Client, repo: str, case: str) -> None:
    scenario, status, code = STATUS_TABLE[case]
    error = assert_error(scenario(client, repo), status, code)
    assert error["message"], "the message must say something"


# --- invalid repository names --------------------------------------------------------------

INVALID_NAMES = [
    "Upper/case",
    "trailing-",
    "-leading",
    "a..b",
    "a___b",
    "a/.hidden",
    "a/_x",
    "a%20b",
    "a:b",
    "a" * 256,
    "/".join(["abcdefghij"] * 24),  # 263 characters in valid components
]


def name_invalid_requests(name: str) -> list[tuple[str, str, dict[str, object]]]:
    data = b"x"
    return [
        ("GET", f"/v2/{name}/tags/list", {}),
        ("GET", blob_path(name, absent_digest()), {}),
        ("GET", manifest_path(name, "latest"), {}),
        ("POST", uploads_path(name), {}),
        ("POST", uploads_path(name), {"params": {"digest": sha256_digest(data)}, "content": data}),
        (
            "PUT",
            manifest_path(name, "latest"),
            {"content": b"{}", "headers": {"Content-Type": "application/json"}},
        ),
        ("DELETE", manifest_path(name, absent_digest()), {}),
        ("DELETE", blob_path(name, absent_digest()), {}),
        ("GET", f"/v2/{name}/referrers/{absent_digest()}", {}),
    ]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=lambda n: n[:20])
def test_invalid_repository_name_is_400_name_invalid(client: httpx.Client, name: str) -> None:
    for method, path, kwargs in name_invalid_requests(name):
        r = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert_error(r, 400, "NAME_INVALID")


def test_longest_valid_name_is_accepted(client: httpx.Client) -> None:
    # 255 characters is the limit distribution and zot use for the repository name.
    head = "longname" + uuid.uuid4().hex[:8]
    name = head + "/" + "a" * (255 - len(head) - 1)
    assert len(name) == 255
    push_image(client, name, "v1")
    assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["v1"]


def test_nested_name_with_all_separators(client: httpx.Client) -> None:
    name = f"sep{uuid.uuid4().hex[:8]}/a.b/c_d/e__f/g---h/0"
    push_image(client, name, "v1")
    assert client.get(f"/v2/{name}/tags/list").status_code == 200


# --- path traversal ------------------------------------------------------------------------


def traversal_targets(marker: str, repo: str, depth: int) -> list[tuple[str, str, bytes]]:
    """Requests that would write or read outside the root if a name or reference escaped.

    `%2F` and `%2E` are decoded by the server before routing, so these must be rejected after
    decoding; the literal `..` forms are sent as they are (httpx would normalise them).
    """
    up = "..%2F" * depth
    data = marker.encode()
    dig = sha256_digest(data)
    return [
        ("POST", f"/v2/{up}{marker}/blobs/uploads/?digest={dig}", data),
        ("POST", f"/v2/..%2F{marker}/blobs/uploads/", b""),
        ("POST", f"/v2/%2E%2E%2F%2E%2E%2F{marker}/blobs/uploads/?digest={dig}", data),
        ("POST", f"/v2/{repo}/..%2F..%2F{marker}/blobs/uploads/?digest={dig}", data),
        # Climbs above /v2 even if the server resolves dot segments itself.
        ("POST", f"/v2/../../{marker}/blobs/uploads/?digest={dig}", data),
        ("POST", f"/v2/{marker}%2F..%2F..%2F{marker}x/blobs/uploads/?digest={dig}", data),
        ("PUT", f"/v2/{up}{marker}/manifests/latest", b"{}"),
        ("PUT", f"/v2/{repo}/manifests/..%2F..%2F{marker}", b"{}"),
        ("PUT", f"/v2/{repo}/manifests/{up}{marker}", b"{}"),
        ("PATCH", f"/v2/{repo}/blobs/uploads/..%2F..%2F{marker}", data),
        ("PUT", f"/v2/{repo}/blobs/uploads/{up}{marker}?digest={dig}", data),
        ("DELETE", f"/v2/{repo}/blobs/uploads/..%2F..%2F{marker}", b""),
        ("GET", f"/v2/{repo}/blobs/sha256:..%2F..%2F..%2Foci-layout", b""),
        ("GET", f"/v2/{repo}/blobs/sha256%2F..%2F..%2F..%2Findex.json", b""),
        ("DELETE", f"/v2/{repo}/blobs/sha256:..%2F..%2F..%2F{marker}", b""),
        ("GET", f"/v2/{up}etc/tags/list", b""),
        ("GET", f"/v2/{repo}%00{marker}/tags/list", b""),
    ]


def test_path_traversal_never_leaves_the_root(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    root = registry.root.resolve()
    push_image(client, repo, "v1")
    marker = "escape" + uuid.uuid4().hex[:12]
    before_outside = outside_files(root)
    for depth in (1, 2, 3, len(root.parts) + 2):
        for method, target, body in traversal_targets(marker, repo, depth):
            headers = {"Content-Type": "application/octet-stream"}
            r = raw_request(registry.url, method, target, body, headers)
            assert 400 <= r.status < 500, f"{method} {target} -> {r.status} {r.body[:200]!r}"
            if method == "GET":
                assert b"imageLayoutVersion" not in r.body and b'"manifests"' not in r.body
    # Nothing named after the marker anywhere from the filesystem root down to the root dir.
    for ancestor in [root, *root.parents]:
        assert not (ancestor / marker).exists(), ancestor / marker
    for path in root.parents[1].rglob(f"*{marker}*"):
        assert root in path.resolve().parents, f"traversal wrote {path}"
    # And no new file appeared beside the root (the server's own log is allowed to grow).
    assert outside_files(root) - before_outside <= {registry.log_path.resolve()}


def outside_files(root: Path) -> set[Path]:
    """Files within two levels above the root but not under it. Other members' private
    directories (`.ocireg`: locks, the proofs they accepted) beside it are theirs to change."""
    base = root.parents[1]
    return {
        p.resolve()
        for p in base.rglob("*")
        if p.is_file()
        and root not in p.resolve().parents
        and p.resolve() != root
        and ".ocireg" not in p.relative_to(base).parts
    }


def test_mount_from_traversal_is_not_followed(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    # A blob outside the root (in the registry's workdir) must not be mountable by name.
    data, digest = random_blob(64)
    fake = registry.root.parent / f"outside-{uuid.uuid4().hex[:8]}"
    blob = fake / "blobs" / "sha256" / digest.split(":")[1]
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (fake / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (fake / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    try:
        push_blob(client, repo, b"repository exists")
        target = f"/v2/{repo}/blobs/uploads/?mount={digest}&from=..%2F{fake.name}"
        r = raw_request(registry.url, "POST", target)
        # Either refused as an invalid name or treated as "not there": a fresh upload.
        assert r.status in (202, 400), r.body
        assert client.head(blob_path(repo, digest)).status_code == 404
    finally:
        shutil.rmtree(fake)


# --- methods and unknown endpoints ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("PATCH", "/manifests/v1"),
        ("POST", "/manifests/v1"),
        ("POST", "/tags/list"),
        ("PUT", "/tags/list"),
        ("DELETE", "/tags/list"),
        ("PUT", "/blobs/{digest}"),
        ("POST", "/referrers/{digest}"),
    ],
)
def test_method_not_allowed_is_405_unsupported(
    client: httpx.Client, repo: str, method: str, suffix: str
) -> None:
    image = push_image(client, repo, "v1")
    path = f"/v2/{repo}" + suffix.format(digest=image.digest)
    assert_error(client.request(method, path, content=b""), 405, "UNSUPPORTED")


def test_unknown_v2_endpoint_is_404_json(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "v1")
    assert_error(client.get(f"/v2/{repo}/nonsense/thing"), 404, None)
