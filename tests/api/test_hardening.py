"""Requests an attacker would try: names inside another repository's layout, queries that
two readers could read two ways, documents nested past reason. Each is answered with the
spec's error envelope and leaves every repository as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    OCI_INDEX,
    assert_error,
    blob_path,
    manifest_path,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    sha256_digest,
    uploads_path,
)

LAYOUT_COMPONENTS = ["blobs", "index.json", "oci-layout", "blobs/sha256", "blobs/x/y"]


@pytest.mark.parametrize("inner", LAYOUT_COMPONENTS)
def test_names_inside_a_repository_layout_are_invalid(
    client: httpx.Client, repo: str, inner: str
) -> None:
    image = push_image(client, repo, "v1")
    name = f"{repo}/{inner}"
    assert_error(client.post(uploads_path(name)), 400, "NAME_INVALID")
    assert_error(push_manifest(client, name, "v1", image.manifest), 400, "NAME_INVALID")
    assert_error(client.get(f"/v2/{name}/tags/list"), 400, "NAME_INVALID")
    assert_error(client.delete(manifest_path(name, "v1")), 400, "NAME_INVALID")
    # the repository whose layout the name pointed into is whole
    assert client.get(manifest_path(repo, "v1")).status_code == 200
    for layer in image.layers:
        assert client.get(blob_path(repo, sha256_digest(layer))).content == layer


def test_names_inside_a_repository_that_does_not_exist_yet_are_invalid(
    client: httpx.Client, repo: str
) -> None:
    # Refused whether or not `repo` exists: otherwise pushing `repo` later could fail.
    data, digest = random_blob()
    inner = f"{repo}/blobs/sha256/{digest.split(':')[1]}"
    assert_error(client.post(uploads_path(inner)), 400, "NAME_INVALID")
    push_blob(client, repo, data)
    push_image(client, repo, "v1")
    assert client.get(blob_path(repo, digest)).content == data


def test_blob_digest_named_like_a_blob_directory_is_blob_unknown(
    client: httpx.Client, repo: str
) -> None:
    data, digest = random_blob()
    push_blob(client, repo, data)
    nested = f"{repo}/blobs/sha256/{digest.split(':')[1]}"
    assert_error(client.delete(blob_path(nested, digest)), 400, "NAME_INVALID")
    assert client.get(blob_path(repo, digest)).content == data


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v2/{repo}/tags/list", "n=1&n=2"),
        ("/v2/{repo}/tags/list", "last=a&last=b"),
        ("/v2/_catalog", "n=1&%6e=2"),
        ("/v2/{repo}/referrers/{digest}", "artifactType=a&artifactType=b"),
        ("/v2/{repo}/blobs/uploads/", "digest={digest}&digest={digest}"),
    ],
)
def test_repeated_meaningful_query_keys_are_400(
    client: httpx.Client, repo: str, path: str, query: str
) -> None:
    image = push_image(client, repo, "v1")
    url = path.format(repo=repo, digest=image.digest) + "?" + query
    method = "POST" if "uploads" in path else "GET"
    error = assert_error(client.request(method, url), 400, "QUERY_INVALID")
    assert error["detail"]["repeated"] in ("n", "last", "artifactType", "digest")


@pytest.mark.parametrize(
    "n", ["abc", "-1", "1.5", "%C2%B2", "%EF%BC%91", "9223372036854775808", "9" * 5000]
)
def test_pagination_number_must_be_a_number(client: httpx.Client, repo: str, n: str) -> None:
    # "²" and a full-width 1 pass str.isdigit; "²" then failed int(), and so did 5,000 digits:
    # a 500. Past int64 is invalid, as zot parses n.
    push_image(client, repo, "v1")
    assert_error(client.get(f"/v2/{repo}/tags/list?n={n}"), 400, "PAGINATION_NUMBER_INVALID")
    assert_error(client.get(f"/v2/_catalog?n={n}"), 400, "PAGINATION_NUMBER_INVALID")


def test_pagination_number_up_to_int64_lists_everything(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "v1")
    r = client.get(f"/v2/{repo}/tags/list?n=9223372036854775807")
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["v1"]
    assert client.get("/v2/_catalog?n=9223372036854775807").status_code == 200


@pytest.mark.parametrize("depth", [65, 5_000, 200_000])
def test_end7_deeply_nested_manifest_is_manifest_invalid(
    client: httpx.Client, repo: str, depth: int
) -> None:
    body = b'{"schemaVersion":2,"x":' + b"[" * depth + b"]" * depth + b"}"
    assert_error(push_manifest(client, repo, "deep", body), 400, "MANIFEST_INVALID")
    push_image(client, repo, "v1")  # the server is fine, and so is the repository
    assert_error(client.get(manifest_path(repo, "deep")), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999999"])
def test_end7_manifest_with_a_number_json_has_not_is_manifest_invalid(
    client: httpx.Client, repo: str, number: bytes
) -> None:
    # Python's parser takes these; JSON (and Go, zot's and the clients' decoder) does not.
    def index(x: bytes) -> bytes:
        return b'{"schemaVersion":2,"mediaType":"%s","manifests":[],"x":%s}' % (
            OCI_INDEX.encode(),
            x,
        )

    assert push_manifest(client, repo, "plain", index(b"1.5"), OCI_INDEX).status_code == 201
    assert_error(
        push_manifest(client, repo, "odd", index(number), OCI_INDEX), 400, "MANIFEST_INVALID"
    )
    assert_error(client.get(manifest_path(repo, "odd")), 404, "MANIFEST_UNKNOWN")


def test_wrong_method_is_405_with_allow(client: httpx.Client, repo: str) -> None:
    r = client.request("PATCH", f"/v2/{repo}/tags/list")
    assert_error(r, 405, "UNSUPPORTED")
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_end7_tag_ending_in_a_newline_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    # `%0A` decodes to "\n", which a `$`-anchored grammar let through: the tag was stored.
    image = push_image(client, repo, "v1")
    r = push_manifest(client, repo, "v2%0A", image.manifest)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


def test_end2_digest_ending_in_a_newline_is_digest_invalid(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    assert_error(client.get(blob_path(repo, image.digest + "%0A")), 400, "DIGEST_INVALID")
    assert_error(client.delete(blob_path(repo, image.digest + "%0A")), 400, "DIGEST_INVALID")
    assert client.get(manifest_path(repo, "v1")).content == image.manifest


def _mutated(manifest: bytes, change: Callable[[dict[str, Any]], object]) -> bytes:
    doc = json.loads(manifest)
    change(doc)
    return json.dumps(doc).encode()


# Fields a later reader (search, GraphQL, the pages) takes for strings, ints or lists, as the
# image spec types them: accepted before, they stored documents zot refuses, and one
# referrer's `{"a": []}` annotation broke every GraphQL answer that listed it.
WRONG_TYPES: dict[str, Callable[[dict[str, Any]], object]] = {
    "annotation-not-a-string": lambda d: d.update(annotations={"a": []}),
    "annotations-a-list": lambda d: d.update(annotations=[]),
    "schema-version-2.0": lambda d: d.update(schemaVersion=2.0),
    "size-past-int64": lambda d: d["config"].update(size=1 << 70),
    "urls-a-string": lambda d: d["layers"][0].update(urls="x"),
    "descriptor-annotations-a-string": lambda d: d["config"].update(annotations="x"),
}


@pytest.mark.parametrize("change", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_end7_fields_of_the_wrong_type_are_manifest_invalid(
    client: httpx.Client, repo: str, change: Callable[[dict[str, Any]], object]
) -> None:
    image = push_image(client, repo, "v1")
    r = push_manifest(client, repo, "odd", _mutated(image.manifest, change))
    assert_error(r, 400, "MANIFEST_INVALID")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


@pytest.mark.parametrize(
    "encode",
    [lambda b: b"\xef\xbb\xbf" + b, lambda b: b.decode().encode("utf-16")],
    ids=["bom", "utf-16"],
)
def test_end7_manifest_not_in_utf8_is_manifest_invalid(
    client: httpx.Client, repo: str, encode: Callable[[bytes], bytes]
) -> None:
    image = push_image(client, repo, "v1")
    assert_error(
        push_manifest(client, repo, "odd", encode(image.manifest)), 400, "MANIFEST_INVALID"
    )
    assert_error(client.get(manifest_path(repo, "odd")), 404, "MANIFEST_UNKNOWN")
