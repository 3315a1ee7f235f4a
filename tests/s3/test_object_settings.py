"""distribution's S3 write parameters (`encrypt`, `keyid`, `storageclass`, `objectacl`,
`chunksize`, `multipartcopy*`) end to end: an ocireg process on SeaweedFS takes pushes that
reach every way it writes an object, and every object it left in the bucket is then HEADed
with a plain S3 client. SeaweedFS runs with an SSE-S3 key and its local KMS
(`tests/support/backends.py`), stores the storage class and returns both on HEAD; a copy it
is not told to encrypt comes out in the clear, so the copies prove they asked again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import backend_config
from tests.support.backends import BUCKET, KMS_KEY, Redis, SeaweedFS
from tests.support.oci import (
    assert_image_pulls,
    blob_path,
    patch_chunk,
    push_blob_chunked,
    push_blob_monolithic,
    push_image,
    random_bytes,
    sha256_digest,
    start_upload,
    unique_repo,
    uploads_path,
)
from tests.support.reads import METRICS, storage_requests
from tests.support.server import RegistryProcess

MiB = 1 << 20
# Parts of 5 MiB (S3's least); copies in parts of 5 MiB, two at once, where they are in parts.
WRITES = {
    "storageclass": "standard_ia",  # any case, as distribution reads it
    "objectacl": "private",
    "chunksize": 5 * MiB,
    "multipartcopychunksize": 5 * MiB,
    "multipartcopymaxconcurrency": 2,
}
SSE_S3 = {"encrypt": True, "multipartcopythresholdsize": 8 * MiB}  # copies above 8 MiB in parts
# SeaweedFS 4.48 answers UploadPartCopy from an SSE-KMS object with NotImplemented: with
# KMS every copy here is one CopyObject (the default threshold, 5 GiB).
SSE_KMS = {"encrypt": "true", "keyid": KMS_KEY}


@pytest.fixture(params=[SSE_S3, SSE_KMS], ids=["sse_s3", "sse_kms"])
def registry(
    request: pytest.FixtureRequest, tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[RegistryProcess]:
    root, prefix = f"/w{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    config = backend_config(tmp_path, seaweedfs, redis_server, root, prefix)
    config["storage"]["storageDriver"].update(WRITES, **request.param)
    config["extensions"] = METRICS  # the S3 operations sent, counted
    proc = RegistryProcess(tmp_path, config)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class Written:
    """What the registry stored, read beside it."""

    def __init__(self, seaweedfs: SeaweedFS, registry: RegistryProcess) -> None:
        driver = registry.config["storage"]["storageDriver"]
        root = driver["rootdirectory"].strip("/")
        self.prefix = f"{root}/{root}/"
        self.kms = "keyid" in driver
        self.s3 = seaweedfs.client()

    def key(self, path: str) -> str:
        return self.prefix + path

    def blob(self, repo: str, digest: str) -> str:
        return self.key(f"{repo}/blobs/sha256/{digest.removeprefix('sha256:')}")

    def keys(self) -> list[str]:
        """Every object under the registry's root (SeaweedFS lists emptied folders as
        `dir/` keys: those are no objects of ocireg's)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def check(self, key: str) -> None:
        """The object at `key` is encrypted as configured and has the configured class."""
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        assert head.get("StorageClass") == "STANDARD_IA", (key, head)
        if self.kms:
            assert head.get("ServerSideEncryption") == "aws:kms", (key, head)
            assert head.get("SSEKMSKeyId"), (key, head)  # SeaweedFS names the key's id
        else:
            assert head.get("ServerSideEncryption") == "AES256", (key, head)


def _put_in_chunks(client: httpx.Client, repo: str, data: bytes, written: Written) -> None:
    """POST, one PATCH of all but 1 MiB (a part of the session's multipart upload goes out,
    the rest is the state object's tail), the session's own objects checked, then the last
    PATCH and the final PUT."""
    location = start_upload(client, repo)
    session = location.rsplit("/", 1)[-1].split("?")[0]
    cut = len(data) - MiB
    r = patch_chunk(client, location, data[:cut], 0)
    assert r.status_code == 202, r.text
    written.check(written.key(f"{repo}/.uploads/{session}"))  # the state, holding blob bytes
    written.check(written.key(f"{repo}/.uploads-sessions/{session}"))  # its register entry
    r = patch_chunk(client, r.headers["location"], data[cut:], cut)
    assert r.status_code == 202, r.text
    r = client.put(r.headers["location"], params={"digest": sha256_digest(data)})
    assert r.status_code == 201, r.text


def test_every_object_written_is_encrypted_and_of_the_class(
    registry: RegistryProcess, seaweedfs: SeaweedFS
) -> None:
    written = Written(seaweedfs, registry)
    repo, other = unique_repo("sse"), unique_repo("sse-mount")
    whole = random_bytes(3 * MiB)  # one PutObject at the blob's key
    direct = random_bytes(12 * MiB + 5)  # a multipart upload at the blob's key
    small = random_bytes(2 * MiB + 3)  # PATCHes: the state's tail PUT to the blob's key
    copied = random_bytes(7 * MiB)  # PATCHes: parts sealed at the session, one CopyObject
    in_parts = random_bytes(13 * MiB + 1)  # ...UploadPartCopy of 3 parts (SSE-S3)
    with httpx.Client(base_url=registry.url, timeout=120) as client:
        for data in (whole, direct):
            r = push_blob_monolithic(client, repo, data)
            assert r.status_code == 201, r.text
        r = push_blob_chunked(client, repo, small, MiB)
        assert r.status_code == 201, r.text
        _put_in_chunks(client, repo, copied, written)
        _put_in_chunks(client, repo, in_parts, written)
        for data in (whole, in_parts):  # cross-repository mounts: a copy each
            digest = sha256_digest(data)
            r = client.post(uploads_path(other), params={"mount": digest, "from": repo})
            assert r.status_code == 201, r.text
        image = push_image(client, repo, "v1")  # manifest, config, layer, index.json
        assert_image_pulls(client, image, "v1")
        blobs = {repo: [whole, direct, small, copied, in_parts], other: [whole, in_parts]}
        for name, datas in blobs.items():
            for data in datas:  # each decrypted whole, through the registry
                got = client.get(blob_path(name, sha256_digest(data)))
                assert got.status_code == 200 and got.content == data
    # Every way of making an object was taken (a copy in parts: with SSE-S3 only).
    sent = storage_requests(registry)
    made = {"PutObject", "CreateMultipartUpload", "CopyObject", "UploadPartCopy"}
    assert made - set(sent) == (set() if not written.kms else {"UploadPartCopy"}), sent
    keys = written.keys()
    expected = [written.blob(name, sha256_digest(d)) for name, ds in blobs.items() for d in ds]
    expected += [written.key(f"{repo}/index.json"), written.key(f"{other}/index.json")]
    expected += [written.blob(repo, image.digest)]
    assert not set(expected) - set(keys), sorted(set(expected) - set(keys))
    objects = [k for k in keys if not k.endswith("/")]
    for key in objects:
        written.check(key)


def _peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) >> 10
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_large_chunksize_costs_a_small_blob_no_whole_part(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """`chunksize` may be up to 5 GiB: an upload's buffer grows with what it holds, so small
    blobs (configs, small layers) cost their own size. A whole part each made a worker's peak
    RSS 1.1 GiB for three pushes of small images at chunksize 1 GiB."""
    root, prefix = f"/w{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    config = backend_config(tmp_path, seaweedfs, redis_server, root, prefix)
    config["http"]["workers"] = 1
    config["storage"]["storageDriver"]["chunksize"] = str(1 << 30)  # as zot's YAML gives it
    proc = RegistryProcess(tmp_path, config).start()
    try:
        (worker,) = proc.worker_pids()
        before = _peak_rss_mib(worker)
        with httpx.Client(base_url=proc.url, timeout=120) as client:
            images = [push_image(client, unique_repo("small"), "v1", layers=2) for _ in range(3)]
            big = random_bytes(7 * MiB)  # a buffer grown past its first sizes: still whole
            assert push_blob_monolithic(client, images[0].repo, big).status_code == 201
            got = client.get(f"/v2/{images[0].repo}/blobs/{sha256_digest(big)}")
            assert got.content == big
            for image in images:
                assert_image_pulls(client, image, "v1")
        grown = _peak_rss_mib(worker) - before
        assert grown < 200, f"peak RSS grew by {grown} MiB"
        assert "Traceback" not in proc.logs()
    finally:
        proc.stop()
