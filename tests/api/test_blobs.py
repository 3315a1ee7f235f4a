"""end-2 (GET/HEAD a blob, with Range) and end-10 (DELETE a blob)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.oci import (
    absent_digest,
    assert_error,
    blob_path,
    manifest_path,
    push_blob,
    push_blob_monolithic,
    push_image,
    random_blob,
    sha256_digest,
    sha512_digest,
)


@pytest.fixture
def blob(client: httpx.Client, repo: str) -> tuple[bytes, str]:
    data, digest = random_blob(10_000)
    assert push_blob(client, repo, data) == digest
    return data, digest


# --- end-2: GET / HEAD ---------------------------------------------------------------------


def test_end2_get_blob_returns_bytes_and_digest(
    client: httpx.Client, repo: str, blob: tuple[bytes, str]
) -> None:
    data, digest = blob
    r = client.get(blob_path(repo, digest))
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["docker-content-digest"] == digest
    assert int(r.headers["content-length"]) == len(data)


def test_end2_head_blob_has_length_digest_and_no_body(
    client: httpx.Client, repo: str, blob: tuple[bytes, str]
) -> None:
    data, digest = blob
    r = client.head(blob_path(repo, digest))
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) == len(data)
    assert r.headers["docker-content-digest"] == digest


def test_end2_large_blob_round_trip(client: httpx.Client, repo: str) -> None:
    # Larger than any sensible read chunk, so the download spans several of them.
    data, digest = random_blob(5 * 1024 * 1024 + 17)
    push_blob(client, repo, data)
    r = client.get(blob_path(repo, digest))
    assert r.status_code == 200
    assert r.content == data


def test_end2_unknown_blob_is_404_blob_unknown(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"make the repository exist")
    r = client.get(blob_path(repo, absent_digest()))
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_end2_head_unknown_blob_is_404_without_body(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"make the repository exist")
    r = client.head(blob_path(repo, absent_digest()))
    assert r.status_code == 404
    assert r.content == b""


def test_end2_blob_in_unknown_repo_is_404(client: httpx.Client, repo: str) -> None:
    r = client.get(blob_path(repo, absent_digest()))
    assert_error(r, 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))


def test_end2_blob_of_another_repo_is_not_visible(
    client: httpx.Client, repo: str, blob: tuple[bytes, str]
) -> None:
    # Each repository is its own OCI layout: a blob pushed to one is not in another.
    other = repo + "-other"
    push_blob(client, other, b"other repository exists")
    r = client.get(blob_path(other, blob[1]))
    assert_error(r, 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:xyz",
        "sha256:" + "a" * 63,
        "sha256:" + "A" * 64,
        "md5:" + "0" * 32,
        "sha256",
        "notadigest",
    ],
)
def test_end2_malformed_digest_is_400_digest_invalid(
    client: httpx.Client, repo: str, digest: str
) -> None:
    push_blob(client, repo, b"make the repository exist")
    r = client.get(blob_path(repo, digest))
    assert_error(r, 400, "DIGEST_INVALID")


# --- end-2: Range --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=9990-", 9990, 9999),
        ("bytes=-10", 9990, 9999),
        ("bytes=9000-20000", 9000, 9999),  # an end past the size is clamped
        ("bytes=9000-9223372036854775807", 9000, 9999),  # int64's largest
        ("bytes=-9223372036854775807", 0, 9999),
    ],
)
def test_end2_range_is_206_with_content_range(
    client: httpx.Client,
    repo: str,
    blob: tuple[bytes, str],
    header: str,
    start: int,
    end: int,
) -> None:
    data, digest = blob
    r = client.get(blob_path(repo, digest), headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.content == data[start : end + 1]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    assert int(r.headers["content-length"]) == end - start + 1


def test_end2_range_on_large_blob(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(3 * 1024 * 1024)
    push_blob(client, repo, data)
    start, end = 1024 * 1024 - 5, 2 * 1024 * 1024 + 5
    r = client.get(blob_path(repo, digest), headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206
    assert r.content == data[start : end + 1]


@pytest.mark.parametrize(
    "header",
    [
        "bytes=10000-",
        "bytes=20000-20010",
        # past int64, as Go's servers (zot) refuse them; int() refuses 4,300 digits: was a 500
        "bytes=" + "9" * 5000 + "-",
        "bytes=0-" + "9" * 5000,
        "bytes=-" + "9" * 5000,
        "bytes=0-9223372036854775808",
    ],
)
def test_end2_unsatisfiable_range_is_416_json(
    client: httpx.Client, repo: str, blob: tuple[bytes, str], header: str
) -> None:
    # Starlette's FileResponse answers these in text/plain; the issue wants the envelope.
    r = client.get(blob_path(repo, blob[1]), headers={"Range": header})
    assert_error(r, 416, None)


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=9-2"])
def test_end2_malformed_range_is_416_json(
    client: httpx.Client, repo: str, blob: tuple[bytes, str], header: str
) -> None:
    r = client.get(blob_path(repo, blob[1]), headers={"Range": header})
    assert_error(r, 416, None)


@pytest.mark.parametrize("header", ["bytes=0-1,3-4", "bytes=0-1, -2", "pages=0-1"])
def test_end2_several_ranges_or_another_unit_get_the_whole_blob(
    client: httpx.Client, repo: str, blob: tuple[bytes, str], header: str
) -> None:
    # HTTP lets a server answer a Range with the whole representation; 416 would say the
    # ranges cannot be served, which they can.
    r = client.get(blob_path(repo, blob[1]), headers={"Range": header})
    assert r.status_code == 200 and r.content == blob[0]
    assert "content-range" not in r.headers


# --- sha512 --------------------------------------------------------------------------------


def test_end2_sha512_blob_round_trip(client: httpx.Client, repo: str) -> None:
    data = b"sha512 content " * 100
    digest = sha512_digest(data)
    r = push_blob_monolithic(client, repo, data, digest)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    got = client.get(blob_path(repo, digest))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["docker-content-digest"] == digest
    head = client.head(blob_path(repo, digest))
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(data)


def test_end2_sha512_digest_mismatch_is_400(client: httpx.Client, repo: str) -> None:
    r = push_blob_monolithic(client, repo, b"one", sha512_digest(b"two"))
    assert_error(r, 400, "DIGEST_INVALID")
    assert client.head(blob_path(repo, sha512_digest(b"one"))).status_code == 404


# --- end-10: DELETE ------------------------------------------------------------------------


def test_end10_delete_blob_is_202_then_404(
    client: httpx.Client, repo: str, blob: tuple[bytes, str]
) -> None:
    digest = blob[1]
    r = client.delete(blob_path(repo, digest))
    assert r.status_code == 202, r.text
    assert_error(client.get(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")
    assert client.head(blob_path(repo, digest)).status_code == 404


def test_end10_delete_unknown_blob_is_404(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"make the repository exist")
    assert_error(client.delete(blob_path(repo, absent_digest())), 404, "BLOB_UNKNOWN")


def test_end10_delete_twice_is_404_the_second_time(
    client: httpx.Client, repo: str, blob: tuple[bytes, str]
) -> None:
    assert client.delete(blob_path(repo, blob[1])).status_code == 202
    assert_error(client.delete(blob_path(repo, blob[1])), 404, "BLOB_UNKNOWN")


def test_end10_delete_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"make the repository exist")
    assert_error(client.delete(blob_path(repo, "sha256:nothex")), 400, "DIGEST_INVALID")


def test_end10_deleted_blob_can_be_pushed_again(
    client: httpx.Client, repo: str, blob: tuple[bytes, str]
) -> None:
    data, digest = blob
    assert client.delete(blob_path(repo, digest)).status_code == 202
    push_blob(client, repo, data)
    assert client.get(blob_path(repo, digest)).content == data


def test_end10_delete_of_a_manifest_the_repository_lists_is_405_denied(
    client: httpx.Client, repo: str
) -> None:
    # It was 202: the manifest's bytes went, and tag v1, still listed, answered 404.
    image = push_image(client, repo, "v1")
    assert_error(client.delete(blob_path(repo, image.digest)), 405, "DENIED")
    assert client.get(manifest_path(repo, "v1")).content == image.manifest
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
    # the order the conformance suite uses: the manifest first, then its blob
    assert client.delete(manifest_path(repo, image.digest)).status_code == 202
    assert client.delete(blob_path(repo, image.digest)).status_code in (202, 404)


def test_end10_delete_of_a_config_or_layer_an_image_names_is_405_denied(
    client: httpx.Client, repo: str
) -> None:
    """zot's rule: the image would lose a blob its manifest names. Once no manifest names
    it (the image deleted), the blob can go."""
    image = push_image(client, repo, "v1")
    for data in (image.config, image.layers[0]):
        assert_error(client.delete(blob_path(repo, sha256_digest(data))), 405, "DENIED")
        assert client.get(blob_path(repo, sha256_digest(data))).content == data
    assert client.delete(manifest_path(repo, image.digest)).status_code == 202
    assert client.delete(blob_path(repo, sha256_digest(image.config))).status_code == 202


def test_end10_delete_layer_of_other_repo_keeps_this_one(client: httpx.Client, repo: str) -> None:
    # The same bytes in two repositories are two blobs: deleting one leaves the other.
    image = push_image(client, repo, "v1")
    other = repo + "-copy"
    layer = image.layers[0]
    layer_digest = push_blob(client, other, layer)
    assert client.delete(blob_path(other, layer_digest)).status_code == 202
    assert client.get(blob_path(repo, layer_digest)).content == layer
