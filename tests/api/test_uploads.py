"""Blob uploads: end-4a/end-4b (POST), end-5 (PATCH), end-6 (PUT), end-11 (mount), end-13 (GET
status) and DELETE on the upload location."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.oci import (
    absent_digest,
    assert_error,
    blob_path,
    patch_chunk,
    push_blob,
    push_blob_chunked,
    push_blob_monolithic,
    random_blob,
    sha256_digest,
    start_upload,
    uploads_path,
)
from tests.support.rawhttp import chunk, read_response, start_request
from tests.support.server import RegistryProcess, wait_until

# An empty session has no last byte; registries answer "0-0" (distribution, zot) and the spec
# does not define it, so either spelling is accepted.
EMPTY_RANGES = {"0-0", "0--1"}
MiB = 1 << 20


def assert_blob(client: httpx.Client, repo: str, data: bytes) -> None:
    r = client.get(blob_path(repo, sha256_digest(data)))
    assert r.status_code == 200, r.text
    assert r.content == data


def assert_no_blob(client: httpx.Client, repo: str, digest: str) -> None:
    assert client.head(blob_path(repo, digest)).status_code == 404


def assert_created(r: httpx.Response, digest: str) -> None:
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    assert r.headers.get("location"), "201 on a blob upload must carry Location"


def unknown_location(repo: str) -> str:
    return f"{uploads_path(repo)}{uuid.uuid4()}"


# --- end-4a / end-4b: POST -----------------------------------------------------------------


def test_end4a_post_opens_session_with_location_and_range(client: httpx.Client, repo: str) -> None:
    r = client.post(uploads_path(repo))
    assert r.status_code == 202, r.text
    assert r.headers.get("location")
    assert r.headers.get("range") in EMPTY_RANGES


def test_end4a_location_is_relative(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    assert location.startswith("/v2/"), location


def test_end4b_post_with_digest_is_201(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(4096)
    r = push_blob_monolithic(client, repo, data, digest, single_post=True)
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end4b_location_of_created_blob_serves_it(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100)
    r = push_blob_monolithic(client, repo, data, digest)
    assert_created(r, digest)
    got = client.get(r.headers["location"])
    assert got.status_code == 200
    assert got.content == data


def test_end4b_empty_blob(client: httpx.Client, repo: str) -> None:
    r = push_blob_monolithic(client, repo, b"")
    assert_created(r, sha256_digest(b""))
    assert_blob(client, repo, b"")


def test_end4b_wrong_digest_is_400_and_nothing_stored(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100)
    wrong = absent_digest()
    r = push_blob_monolithic(client, repo, data, wrong)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, wrong)
    assert_no_blob(client, repo, digest)


def test_end4b_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    r = push_blob_monolithic(client, repo, b"data", "sha256:nothex")
    assert_error(r, 400, "DIGEST_INVALID")


def test_end4b_same_blob_twice_is_201_both_times(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100)
    assert_created(push_blob_monolithic(client, repo, data), digest)
    assert_created(push_blob_monolithic(client, repo, data), digest)
    assert_blob(client, repo, data)


# --- end-6: PUT (monolithic after POST) ----------------------------------------------------


def test_end6_post_then_put_with_body_is_201(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(70_000)
    r = push_blob_monolithic(client, repo, data, digest, single_post=False)
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end6_put_wrong_digest_is_400_and_nothing_stored(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100)
    wrong = absent_digest()
    r = push_blob_monolithic(client, repo, data, wrong, single_post=False)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, wrong)
    assert_no_blob(client, repo, digest)


def test_end6_put_after_chunks_with_wrong_digest_is_400(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(1000)
    location = start_upload(client, repo)
    r = patch_chunk(client, location, data)
    assert r.status_code == 202
    r = client.put(r.headers["location"], params={"digest": absent_digest()})
    assert_error(r, 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, digest)


def test_end6_put_without_digest_is_400(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = client.put(location, content=b"abc")
    assert_error(r, 400, "DIGEST_INVALID")


def test_end6_put_with_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = client.put(location, params={"digest": "sha256:zz"}, content=b"abc")
    assert_error(r, 400, "DIGEST_INVALID")


def test_end6_put_with_final_chunk(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(3000)
    location = start_upload(client, repo)
    r = patch_chunk(client, location, data[:1000])
    assert r.status_code == 202
    r = client.put(
        r.headers["location"],
        params={"digest": digest},
        content=data[1000:],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end4a_post_without_the_final_slash_opens_a_session(
    client: httpx.Client, repo: str
) -> None:
    # It was 400 DIGEST_INVALID (`uploads` read as a blob's digest).
    r = client.post(f"/v2/{repo}/blobs/uploads")
    assert r.status_code == 202, r.text
    data, digest = random_blob(100)
    assert_created(
        client.put(r.headers["location"], params={"digest": digest}, content=data), digest
    )


def test_end6_final_chunk_content_range_is_checked_as_a_patch(
    client: httpx.Client, repo: str
) -> None:
    """A Content-Range on the closing PUT, if present, must continue the session (416 with
    where it stands otherwise, the session kept) and match the body's length."""
    data, digest = random_blob(3000)
    r = patch_chunk(client, start_upload(client, repo), data[:1000], 0)
    location = r.headers["location"]
    for wrong in ("1001-2999", "0-1999", "1000-2000"):
        r = client.put(
            location,
            params={"digest": digest},
            content=data[1000:],
            headers={"Content-Type": "application/octet-stream", "Content-Range": wrong},
        )
        assert_error(r, 416, ("BLOB_UPLOAD_INVALID", "RANGE_INVALID"))
        assert r.headers["range"] == "0-999", wrong
    assert client.get(location).headers["range"] == "0-999"
    r = patch_chunk(client, location, data[1000:], 1000)
    assert r.headers["range"] == "0-2999"
    # without a body, a range (the last PATCH's, as some clients repeat it) says nothing
    r = client.put(
        r.headers["location"], params={"digest": digest}, headers={"Content-Range": "1000-2999"}
    )
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end6_final_chunk_with_its_content_range_is_201(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(3000)
    r = patch_chunk(client, start_upload(client, repo), data[:1000], 0)
    r = client.put(
        r.headers["location"],
        params={"digest": digest},
        content=data[1000:],
        headers={"Content-Type": "application/octet-stream", "Content-Range": "1000-2999"},
    )
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end6_location_is_dead_after_completion(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100)
    location = start_upload(client, repo)
    assert_created(client.put(location, params={"digest": digest}, content=data), digest)
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, location, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")


# --- end-5: PATCH --------------------------------------------------------------------------


def test_end5_patch_without_content_range_appends(client: httpx.Client, repo: str) -> None:
    # The streamed mode containers/image uses: no Content-Range, each PATCH appends.
    data, digest = random_blob(250_000)
    r = push_blob_chunked(client, repo, data, 64 * 1024, content_range=False)
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end5_patch_with_content_range_in_order(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100_001)
    r = push_blob_chunked(client, repo, data, 10_000, content_range=True)
    assert_created(r, digest)
    assert_blob(client, repo, data)


def test_end5_every_patch_reports_range_and_location(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    total = 0
    for size in (1, 10, 1000):
        r = patch_chunk(client, location, b"x" * size)
        assert r.status_code == 202, r.text
        total += size
        assert r.headers["range"] == f"0-{total - 1}"
        assert r.headers.get("location")
        location = r.headers["location"]


def test_end5_mixed_modes_continue_at_session_end(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(300)
    location = start_upload(client, repo)
    r = patch_chunk(client, location, data[:100], start=0)
    assert r.status_code == 202
    r = patch_chunk(client, r.headers["location"], data[100:200])
    assert r.status_code == 202
    r = patch_chunk(client, r.headers["location"], data[200:], start=200)
    assert r.status_code == 202, r.text
    assert_created(client.put(r.headers["location"], params={"digest": digest}), digest)
    assert_blob(client, repo, data)


def test_end5_out_of_order_chunk_is_416(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = patch_chunk(client, location, b"a" * 100, start=0)
    assert r.status_code == 202
    r = patch_chunk(client, r.headers["location"], b"b" * 100, start=200)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")


def test_end5_first_chunk_not_at_zero_is_416(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    assert_error(patch_chunk(client, location, b"a" * 10, start=5), 416, "BLOB_UPLOAD_INVALID")


def test_end5_resent_chunk_is_416_and_session_survives(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(200)
    location = start_upload(client, repo)
    r = patch_chunk(client, location, data[:100], start=0)
    assert r.status_code == 202
    location = r.headers["location"]
    assert_error(patch_chunk(client, location, data[:100], start=0), 416, "BLOB_UPLOAD_INVALID")
    # The refused chunk changed nothing: the session still ends at byte 99 and continues.
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-99"
    r = patch_chunk(client, location, data[100:], start=100)
    assert r.status_code == 202, r.text
    assert_created(client.put(r.headers["location"], params={"digest": digest}), digest)
    assert_blob(client, repo, data)


def test_end5_overlapping_chunk_is_416(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = patch_chunk(client, location, b"a" * 100, start=0)
    assert r.status_code == 202
    r = patch_chunk(client, r.headers["location"], b"b" * 100, start=50)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")


def test_end5_content_range_not_matching_length_is_rejected(
    client: httpx.Client, repo: str
) -> None:
    location = start_upload(client, repo)
    r = client.patch(
        location,
        content=b"a" * 50,
        headers={"Content-Type": "application/octet-stream", "Content-Range": "0-99"},
    )
    assert_error(r, (400, 416), ("BLOB_UPLOAD_INVALID", "SIZE_INVALID"))


def _body(*pieces: bytes) -> Iterator[bytes]:
    """A body httpx sends with chunked transfer encoding: no Content-Length to compare."""
    yield from pieces


@pytest.mark.parametrize(
    ("declared", "sent"),
    [(10, 5), (10, 15), (2 * MiB, 2 * MiB - 5), (2 * MiB, 3 * MiB)],
    ids=["short", "long", "short-large", "long-large"],
)
def test_end5_chunked_body_not_matching_content_range_is_416_and_changes_nothing(
    client: httpx.Client, repo: str, declared: int, sent: int
) -> None:
    """Issue 11, finding 7: the bytes received decide, not the headers. Large bodies reach the
    session file before the mismatch shows; they are taken back."""
    data, digest = random_blob(100 + declared)
    location = start_upload(client, repo)
    assert patch_chunk(client, location, data[:100], 0).status_code == 202
    wrong = (data[100:] + random_blob(sent)[0])[:sent]
    r = client.patch(
        location,
        content=_body(wrong[: sent // 2], wrong[sent // 2 :]),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"100-{99 + declared}",
        },
    )
    assert_error(r, 416, "RANGE_INVALID")
    assert r.headers["range"] == "0-99"
    assert client.get(location).headers["range"] == "0-99"
    # Exactly as it was: the right chunk goes on from byte 100 and the blob is exact.
    r = client.patch(
        location,
        content=_body(data[100:]),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"100-{99 + declared}",
        },
    )
    assert r.status_code == 202, r.text
    assert_created(client.put(r.headers["location"], params={"digest": digest}), digest)
    assert_blob(client, repo, data)


def test_requests_for_unknown_sessions_leave_no_lock_files(
    registry: RegistryProcess, client: httpx.Client, repo: str
) -> None:
    """Issue 11, finding 4: a lock file exists only while its lock is held, so naming sessions
    that do not exist (or pushing and deleting ones that do) leaves nothing behind."""
    for i in range(20):
        location = unknown_location(repo) if i % 2 else f"{uploads_path(repo)}nonsense-{i}"
        assert patch_chunk(client, location, b"abc").status_code == 404
        assert client.put(location, params={"digest": sha256_digest(b"x")}).status_code == 404
        assert client.get(location).status_code == 404
        assert client.delete(location).status_code == 404
    data, digest = random_blob(100)
    assert_created(push_blob_chunked(client, repo, data, 30), digest)
    client.delete(start_upload(client, repo))
    locks = registry.root / ".ocireg" / "locks"
    # Bounded: a background task of the server may hold a lock for a moment.
    wait_until(lambda: not locks.exists() or not any(locks.iterdir()), timeout=10)


def test_end5_malformed_content_range_is_rejected(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = client.patch(
        location,
        content=b"a" * 10,
        headers={"Content-Type": "application/octet-stream", "Content-Range": "garbage"},
    )
    assert_error(r, (400, 416), "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize(
    "content_range", ["0-" + "9" * 5000, "9" * 5000 + "-" + "9" * 5000, "0-99999999999999999999"]
)
def test_end5_content_range_past_any_size_is_416(
    client: httpx.Client, repo: str, content_range: str
) -> None:
    # int() refuses 4,300 digits and more: that was a 500. The session is still usable.
    location = start_upload(client, repo)
    headers = {"Content-Type": "application/octet-stream", "Content-Range": content_range}
    r = client.patch(location, content=b"a" * 10, headers=headers)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["range"] == "0-0"
    assert patch_chunk(client, location, b"abc").status_code == 202


# Chunked bodies whose framing is broken: a size that is not hex, more bytes than the size
# said, a size past any int.
BAD_CHUNKS = [b"zz\r\nabcd\r\n", chunk(b"abcd")[:-2] + b"EXTRA\r\n", b"f" * 20 + b"\r\nabcd\r\n"]


@pytest.mark.parametrize("framing", BAD_CHUNKS, ids=["not-hex", "overlong", "huge"])
def test_end5_malformed_chunked_body_is_400_and_the_session_lives_on(
    registry: RegistryProcess, client: httpx.Client, repo: str, framing: bytes
) -> None:
    # Granian reports such a body as a client that left, then answered a bare text 500.
    location = start_upload(client, repo)
    headers = {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}
    with start_request(registry.port, "PATCH", location, headers, framing + chunk(b"")) as sock:
        answer = read_response(sock)
    assert (answer.status, answer.error_code()) == (400, "BODY_INVALID")
    assert answer.headers["content-type"] == "application/json"
    assert client.get(location).status_code == 204
    assert patch_chunk(client, location, b"abc").status_code == 202


def test_end5_patch_unknown_session_is_404(client: httpx.Client, repo: str) -> None:
    start_upload(client, repo)
    r = patch_chunk(client, unknown_location(repo), b"abc")
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


def test_end6_put_unknown_session_is_404(client: httpx.Client, repo: str) -> None:
    start_upload(client, repo)
    r = client.put(unknown_location(repo), params={"digest": sha256_digest(b"x")}, content=b"x")
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


def test_end5_location_stays_valid_for_whole_session(client: httpx.Client, repo: str) -> None:
    # The first Location keeps working even if later responses hand out another spelling.
    data, digest = random_blob(3000)
    first = start_upload(client, repo)
    for i in range(3):
        r = patch_chunk(client, first, data[i * 1000 : (i + 1) * 1000])
        assert r.status_code == 202, r.text
    assert_created(client.put(first, params={"digest": digest}), digest)
    assert_blob(client, repo, data)


# --- end-13: GET status --------------------------------------------------------------------


def test_end13_status_of_new_session_is_204(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = client.get(location)
    assert r.status_code == 204, r.text
    assert r.headers.get("range") in EMPTY_RANGES
    assert r.headers.get("location")


def test_end13_status_reports_received_bytes(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = patch_chunk(client, location, b"z" * 1234)
    assert r.status_code == 202
    status = client.get(r.headers["location"])
    assert status.status_code == 204
    assert status.headers["range"] == "0-1233"
    assert status.headers.get("location")


def test_end13_unknown_session_is_404(client: httpx.Client, repo: str) -> None:
    start_upload(client, repo)
    assert_error(client.get(unknown_location(repo)), 404, "BLOB_UPLOAD_UNKNOWN")


# --- DELETE on the upload location ---------------------------------------------------------


def test_upload_delete_cancels_session(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(500)
    location = start_upload(client, repo)
    r = patch_chunk(client, location, data)
    assert r.status_code == 202
    location = r.headers["location"]
    r = client.delete(location)
    assert r.status_code == 204, r.text
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, location, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(location, params={"digest": digest}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_no_blob(client, repo, digest)


def test_upload_delete_unknown_session_is_404(client: httpx.Client, repo: str) -> None:
    start_upload(client, repo)
    assert_error(client.delete(unknown_location(repo)), 404, "BLOB_UPLOAD_UNKNOWN")


# --- end-11: cross-repository mount --------------------------------------------------------


def mount(client: httpx.Client, repo: str, digest: str, source: str | None) -> httpx.Response:
    params = {"mount": digest}
    if source is not None:
        params["from"] = source
    return client.post(uploads_path(repo), params=params)


def test_end11_mount_existing_blob_is_201(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(2048)
    source = repo + "-src"
    push_blob(client, source, data)
    r = mount(client, repo, digest, source)
    assert_created(r, digest)
    assert_blob(client, repo, data)
    # The source keeps its blob.
    assert_blob(client, source, data)


def test_end11_mount_absent_blob_falls_back_to_upload(client: httpx.Client, repo: str) -> None:
    source = repo + "-src"
    push_blob(client, source, b"source exists")
    data, digest = random_blob(100)
    r = mount(client, repo, digest, source)
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert r.headers.get("range") in EMPTY_RANGES
    # The 202 is a real upload session.
    assert_created(client.put(location, params={"digest": digest}, content=data), digest)
    assert_blob(client, repo, data)


def test_end11_mount_without_from_falls_back_to_upload(client: httpx.Client, repo: str) -> None:
    data, digest = random_blob(100)
    push_blob(client, repo + "-src", data)
    r = mount(client, repo, digest, None)
    assert r.status_code == 202, r.text
    assert_created(
        client.put(r.headers["location"], params={"digest": digest}, content=data), digest
    )


def test_end11_mount_from_unknown_repo_falls_back_to_upload(
    client: httpx.Client, repo: str
) -> None:
    r = mount(client, repo, absent_digest(), repo + "-nowhere")
    assert r.status_code == 202, r.text
    assert r.headers.get("location")


def test_end11_mount_from_repo_without_that_blob(client: httpx.Client, repo: str) -> None:
    # The blob exists in some third repository, but not in the one named by `from`.
    data, digest = random_blob(100)
    push_blob(client, repo + "-third", data)
    push_blob(client, repo + "-src", b"src exists without the blob")
    r = mount(client, repo, digest, repo + "-src")
    assert r.status_code == 202, r.text
    assert_no_blob(client, repo, digest)


@pytest.mark.parametrize("chunk_size", [1, 7])
def test_end5_tiny_chunks(client: httpx.Client, repo: str, chunk_size: int) -> None:
    data, digest = random_blob(40)
    assert_created(push_blob_chunked(client, repo, data, chunk_size), digest)
    assert_blob(client, repo, data)
