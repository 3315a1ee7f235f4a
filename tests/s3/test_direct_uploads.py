"""Blobs whose digest is known before their bytes (end-4b POST ?digest=, end-4a + a single
end-6 PUT with the whole body) go straight to their key on S3: no session object, no
multipart upload left behind, and nothing at the key unless the digest matched. Checked
beside the registry with a plain S3 client on the bucket."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import backend_config, use_backend
from tests.support.backends import BUCKET, Redis, SeaweedFS
from tests.support.cluster import cluster_configs, running_members
from tests.support.oci import (
    assert_error,
    blob_path,
    patch_chunk,
    push_blob_monolithic,
    random_bytes,
    sha256_digest,
    start_upload,
    unique_repo,
)
from tests.support.rawhttp import read_response, start_request
from tests.support.server import RegistryProcess, run_cli, wait_until

MiB = 1 << 20
# One below S3's part size (one PutObject), and several parts (a multipart upload at the key).
SIZES = pytest.mark.parametrize("size", [3 * MiB + 7, 21 * MiB + 5], ids=["small", "parts"])


@pytest.fixture
def registry(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[RegistryProcess]:
    root, prefix = f"/d{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    proc = RegistryProcess(
        tmp_path, backend_config(tmp_path, seaweedfs, redis_server, root, prefix)
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class Bucket:
    """The objects and open multipart uploads of one registry's repository, read directly."""

    def __init__(self, seaweedfs: SeaweedFS, config: dict[str, Any]) -> None:
        root = config["storage"]["storageDriver"]["rootdirectory"].strip("/")
        self.prefix = f"{root}/{root}/"
        self.s3 = seaweedfs.client()

    def blob_key(self, repo: str, digest: str) -> str:
        return f"{self.prefix}{repo}/blobs/sha256/{digest.removeprefix('sha256:')}"

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.s3.head_object(Bucket=BUCKET, Key=key)
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404, exc
            return None
        return head

    def keys(self, repo: str) -> list[str]:
        """Every object under the repository (`.uploads` is never listed by SeaweedFS; its
        register `.uploads-sessions` is)."""
        keys = set()
        for under in ("", ".uploads/"):  # asked for by name, `.uploads/` is listed
            found = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}{repo}/{under}")
            keys |= {
                o["Key"][len(self.prefix) + len(repo) + 1 :] for o in found.get("Contents", [])
            }
        return sorted(keys)

    def open_uploads(self, repo: str) -> list[str]:
        found = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{self.prefix}{repo}/")
        return [u["Key"] for u in found.get("Uploads", [])]

    def nothing_left(self, repo: str, session: str | None = None) -> bool:
        """No session registered, none at `session`'s key, no multipart upload open."""
        sessions = [k for k in self.keys(repo) if ".uploads" in k and not k.endswith("/")]
        state = self.head(f"{self.prefix}{repo}/.uploads/{session}") if session else None
        return not sessions and not state and not self.open_uploads(repo)


@pytest.fixture
def bucket(registry: RegistryProcess, seaweedfs: SeaweedFS) -> Bucket:
    return Bucket(seaweedfs, registry.config)


def _push(
    client: httpx.Client, repo: str, data: bytes, digest: str, single_post: bool
) -> tuple[httpx.Response, str | None]:
    """end-4b POST ?digest=, or end-4a POST + end-6 PUT with the whole body; the response and
    the session's id (None for end-4b: no session)."""
    if single_post:
        return push_blob_monolithic(client, repo, data, digest), None
    location = start_upload(client, repo)
    r = client.put(location, params={"digest": digest}, content=data)
    return r, location.rsplit("/", 1)[-1]


@SIZES
@pytest.mark.parametrize("single_post", [True, False], ids=["end4b_post", "end4a_end6_put"])
def test_monolithic_push_lands_at_the_blob_key_and_leaves_no_session(
    registry: RegistryProcess, bucket: Bucket, size: int, single_post: bool
) -> None:
    repo = unique_repo("direct")
    data = random_bytes(size)
    digest = sha256_digest(data)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        r, session = _push(client, repo, data, digest, single_post)
        assert r.status_code == 201, r.text
        assert r.headers["docker-content-digest"] == digest
        got = client.get(blob_path(repo, digest))
        assert got.status_code == 200 and got.headers["docker-content-digest"] == digest
        assert sha256_digest(got.content) == digest
    head = bucket.head(bucket.blob_key(repo, digest))
    assert head is not None and head["ContentLength"] == size
    assert bucket.nothing_left(repo, session), (bucket.keys(repo), bucket.open_uploads(repo))


@SIZES
@pytest.mark.parametrize("single_post", [True, False], ids=["end4b_post", "end4a_end6_put"])
def test_monolithic_push_that_lies_about_its_digest_leaves_nothing_at_the_key(
    registry: RegistryProcess, bucket: Bucket, size: int, single_post: bool
) -> None:
    repo = unique_repo("liar")
    data = random_bytes(size)
    claimed = sha256_digest(random_bytes(64))
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        r, session = _push(client, repo, data, claimed, single_post)
        assert_error(r, 400, "DIGEST_INVALID")
        assert_error(client.get(blob_path(repo, claimed)), 404, "BLOB_UNKNOWN")
    assert bucket.head(bucket.blob_key(repo, claimed)) is None
    assert bucket.head(bucket.blob_key(repo, sha256_digest(data))) is None
    assert bucket.nothing_left(repo, session), (bucket.keys(repo), bucket.open_uploads(repo))


def test_end4b_push_of_a_blob_already_there_keeps_the_stored_object(
    registry: RegistryProcess, bucket: Bucket
) -> None:
    """Dedupe: the second push is verified and answered 201, but the object is not written
    again (same ETag and modification time); a lie about it is still 400."""
    repo = unique_repo("again")
    data = random_bytes(17 * MiB)
    digest = sha256_digest(data)
    key = bucket.blob_key(repo, digest)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        assert push_blob_monolithic(client, repo, data).status_code == 201
        first = bucket.head(key)
        assert first is not None
        assert push_blob_monolithic(client, repo, data).status_code == 201
        # The last byte changed (not set: a random last byte is "x" once in 256 runs).
        lie = data[:-1] + bytes([data[-1] ^ 0xFF])
        r = push_blob_monolithic(client, repo, lie, digest)
        assert_error(r, 400, "DIGEST_INVALID")
        assert client.get(blob_path(repo, digest)).content == data
    second = bucket.head(key)
    assert second is not None
    assert (second["ETag"], second["LastModified"]) == (first["ETag"], first["LastModified"])
    assert bucket.nothing_left(repo)


@pytest.mark.parametrize("single_post", [True, False], ids=["end4b_post", "end4a_end6_put"])
def test_client_gone_mid_body_leaves_nothing_at_the_key(
    registry: RegistryProcess, bucket: Bucket, single_post: bool
) -> None:
    repo = unique_repo("gone")
    data = random_bytes(40 * MiB)
    digest = sha256_digest(data)
    session = None
    if single_post:
        target = f"/v2/{repo}/blobs/uploads/?digest={digest}"
        method = "POST"
    else:
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            target = f"{start_upload(client, repo)}?digest={digest}"
        method = "PUT"
        session = target.split("?")[0].rsplit("/", 1)[-1]
    headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
    sock = start_request(registry.port, method, target, headers, data[: 25 * MiB])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # a reset, with 15 MiB still to come
    # end-4b had no session: nothing at all is left; an end-6 session stays open, empty.
    wait_until(
        lambda: bucket.nothing_left(repo) if single_post else not bucket.open_uploads(repo),
        timeout=30,
    )
    assert bucket.head(bucket.blob_key(repo, digest)) is None
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        assert_error(client.get(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")
        if session is not None:
            location = target.split("?")[0]
            status = client.get(location)
            assert status.status_code == 204 and status.headers["range"] == "0-0"
            assert client.put(location, params={"digest": digest}, content=data).status_code == 201
            assert client.get(blob_path(repo, digest)).content == data
            assert bucket.nothing_left(repo, session)


@pytest.mark.parametrize("then", ["put_again", "patch_from_0"])
def test_a_final_put_whose_process_died_leaves_a_session_to_start_again(
    registry: RegistryProcess, bucket: Bucket, then: str
) -> None:
    """The registry is killed while a final PUT streams the blob to its key (a multipart
    upload there, named by the session's state alone). After the restart the session says
    Range 0-0, and the client may PUT the whole blob again or PATCH from 0: either way the
    blob is stored and the dead PUT's upload is aborted, not left for good."""
    repo = unique_repo("died")
    data = random_bytes(30 * MiB)
    digest = sha256_digest(data)
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        location = start_upload(client, repo)
    headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
    sock = start_request(
        registry.port, "PUT", f"{location}?digest={digest}", headers, data[: 20 * MiB]
    )
    try:
        wait_until(lambda: bucket.open_uploads(repo), timeout=30)  # the upload at the blob key
        registry.kill()
    finally:
        sock.close()
    registry.start()
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        status = client.get(location)
        assert status.status_code == 204 and status.headers["range"] == "0-0"
        if then == "put_again":
            assert client.put(location, params={"digest": digest}, content=data).status_code == 201
        else:
            assert patch_chunk(client, location, data, 0).status_code == 202
            assert client.put(location, params={"digest": digest}).status_code == 201
        assert client.get(blob_path(repo, digest)).content == data
    assert bucket.open_uploads(repo) == []


def test_gc_leaves_a_monolithic_post_alone_while_its_body_arrives(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """A POST ?digest= writes its state once, when its upload at the blob key starts: its
    age says nothing of whether bytes still arrive. Garbage collection (here with gcDelay
    0s: any idle session is old enough) finds it busy and leaves it to finish."""
    root, prefix = f"/g{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    config = backend_config(tmp_path, seaweedfs, redis_server, root, prefix)
    config["storage"].update(gc=False, gcDelay="0s")
    registry = RegistryProcess(tmp_path, config)
    registry.start()
    bucket = Bucket(seaweedfs, config)
    try:
        repo = unique_repo("busy")
        data = random_bytes(20 * MiB)
        digest = sha256_digest(data)
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            start_upload(client, repo)  # the repository exists: GC walks it
        headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
        target = f"/v2/{repo}/blobs/uploads/?digest={digest}"
        with start_request(registry.port, "POST", target, headers, data[: 13 * MiB]) as sock:
            wait_until(lambda: bucket.open_uploads(repo), timeout=30)
            gc = run_cli("gc", str(registry.config_path), "--repository", repo)
            assert gc.returncode == 0, gc.stderr
            sock.sendall(data[13 * MiB :])
            answer = read_response(sock)
        assert answer.status == 201, answer.body
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            assert client.get(blob_path(repo, digest)).content == data
    finally:
        registry.stop()


def s3_cluster(tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis) -> list[dict[str, Any]]:
    """Configs of two members (one worker each) on one fresh root in the bucket."""
    root, prefix = f"/m{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    configs = cluster_configs(tmp_path, count=2, workers=1)
    for i, cfg in enumerate(configs):
        cfg["storage"]["rootDirectory"] = str(tmp_path / f"local-{i}")
        use_backend(cfg, seaweedfs, redis_server, root, prefix)
    return configs


def test_chunked_upload_moves_between_members_of_an_s3_cluster(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """end-5 PATCHes on one member, more on the other, end-6 there: the session's state is
    in the bucket; its multipart upload is completed at the session key and copied to the
    blob's (its digest is known only at the end), and no session is left behind."""
    configs = s3_cluster(tmp_path, seaweedfs, redis_server)
    bucket = Bucket(seaweedfs, configs[0])
    repo = unique_repo("moving")
    data = random_bytes(27 * MiB + 3)
    digest = sha256_digest(data)
    session = None
    chunks = [(0, 6 * MiB), (6 * MiB, 19 * MiB), (19 * MiB, len(data))]
    with running_members(tmp_path, configs) as members, httpx.Client(timeout=60) as client:
        location = members[0].url + start_upload(client, repo, members[0].url)
        session = location.rsplit("/", 1)[-1]
        for i, (start, end) in enumerate(chunks):
            path = httpx.URL(location).raw_path.decode()
            r = patch_chunk(client, members[i % 2].url + path, data[start:end], start)
            assert r.status_code == 202, r.text
            assert r.headers["range"] == f"0-{end - 1}"
            location = r.headers["location"]
        r = client.put(members[1].url + location, params={"digest": digest})
        assert r.status_code == 201, r.text
        for member in members:
            got = client.get(member.url + blob_path(repo, digest))
            assert got.status_code == 200 and got.content == data
    head = bucket.head(bucket.blob_key(repo, digest))
    assert head is not None and head["ContentLength"] == len(data)
    assert bucket.nothing_left(repo, session), (bucket.keys(repo), bucket.open_uploads(repo))


def test_a_final_put_gone_before_its_body_leaves_nothing_for_a_later_delete(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """A session with a few bytes; a final PUT on member 0 whose client goes after the
    headers, once the member asks for the body; 9 MiB more PATCHed on member 1 (a multipart
    upload opens at the session's key); the session's DELETE back on member 0. The DELETE
    must abort that multipart upload: it acts on the session as it is, not on a state member
    0 read for a PUT that never got its body."""
    configs = s3_cluster(tmp_path, seaweedfs, redis_server)
    bucket = Bucket(seaweedfs, configs[0])
    repo = unique_repo("gone-put")
    head, more = b"first bytes", random_bytes(9 * MiB)
    digest = sha256_digest(head + more)
    with running_members(tmp_path, configs) as members, httpx.Client(timeout=60) as client:
        location = start_upload(client, repo, members[0].url)
        r = patch_chunk(client, members[0].url + location, head, 0)
        assert r.status_code == 202, r.text
        location = r.headers["location"]

        # The server asks for the body (100 Continue) when the handler first reads it.
        headers = {
            "Content-Length": "100",
            "Content-Type": "application/octet-stream",
            "Expect": "100-continue",
        }
        sock = start_request(members[0].port, "PUT", f"{location}?digest={digest}", headers)
        try:
            assert sock.recv(64).startswith(b"HTTP/1.1 100")
        finally:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()

        r = patch_chunk(client, members[1].url + location, more, len(head))
        assert r.status_code == 202, r.text
        wait_until(lambda: bucket.open_uploads(repo) != [], 30)
        assert client.delete(members[0].url + location).status_code == 204
        assert bucket.nothing_left(repo), (bucket.keys(repo), bucket.open_uploads(repo))
        assert_error(client.get(members[1].url + location), 404, "BLOB_UPLOAD_UNKNOWN")
