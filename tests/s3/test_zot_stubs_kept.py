"""A blob deleted from the repository whose copy zot's dedupe stubs elsewhere stand for
(DELETE, or garbage collection) does not take their bytes along: the bytes are first copied
over a stub, which becomes the original, as zot itself moves its original. On SeaweedFS +
Redis, with zot's Redis cache readable, and without it (found by a look through the
repositories, as when zot keeps its cache in its own bolt file)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS, s3_request
from tests.support.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    blob_path,
    descriptor,
    image_manifest,
    random_bytes,
    sha256_digest,
)
from tests.support.server import RegistryProcess, run_cli, running_registry


class ZotBucket:
    """Two repositories as zot with dedupe leaves them: `orig` holds a layer's bytes, `dup`
    a zero-byte stub of it; each has the same image tagged 1.0."""

    def __init__(self, seaweedfs: SeaweedFS, redis: Redis, prefix: str) -> None:
        self.root = f"z{uuid.uuid4().hex[:8]}"
        self.layer = random_bytes(4096)
        config = b'{"architecture":"amd64","os":"linux"}'
        self.ldig, cdig = sha256_digest(self.layer), sha256_digest(config)
        self.manifest, self.mdig = image_manifest(
            descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, self.layer)]
        )
        entry = {
            "mediaType": OCI_MANIFEST,
            "digest": self.mdig,
            "size": len(self.manifest),
            "annotations": {"org.opencontainers.image.ref.name": "1.0"},
        }
        index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
        for repo, layer_bytes in (("orig", self.layer), ("dup", b"")):
            for key, body in (
                ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                ("index.json", index),
                (f"blobs/sha256/{self.mdig[7:]}", self.manifest),
                (f"blobs/sha256/{cdig[7:]}", config),
                (f"blobs/sha256/{self.ldig[7:]}", layer_bytes),  # b"": zot's dedupe stub
            ):
                key = f"{self.root}/{self.root}/{repo}/{key}"
                assert s3_request(seaweedfs.endpoint, "PUT", key, body) == 200
        self.redis, self.prefix = redis, prefix

    def zot_path(self, repo: str) -> str:
        return f"/{self.root}/{repo}/blobs/sha256/{self.ldig[7:]}"

    def record_in_zots_cache(self) -> None:
        redis, prefix = self.redis, self.prefix
        redis.command("HSET", f"{prefix}:blobs:original", self.ldig, self.zot_path("orig"))
        for repo in ("orig", "dup"):
            redis.command("SADD", f"{prefix}:blobs:duplicates:{self.ldig}", self.zot_path(repo))


def test_a_delete_of_the_original_leaves_the_stubs_their_bytes(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    prefix = uuid.uuid4().hex[:8]
    bucket = ZotBucket(seaweedfs, redis_server, prefix)
    bucket.record_in_zots_cache()
    cfg = backend_config(tmp_path, seaweedfs, redis_server, f"/{bucket.root}", prefix)
    with (
        running_registry(tmp_path, cfg, name="stubs") as proc,
        httpx.Client(base_url=proc.url, timeout=30) as client,
    ):
        assert client.delete(f"/v2/orig/manifests/{bucket.mdig}").status_code == 202
        assert client.delete(blob_path("orig", bucket.ldig)).status_code == 202
        assert client.get(blob_path("orig", bucket.ldig)).status_code == 404
        assert client.get(blob_path("dup", bucket.ldig)).content == bucket.layer
    # zot's cache names the new original, as zot's own delete would leave it.
    original = redis_server.command("HGET", f"{prefix}:blobs:original", bucket.ldig)
    assert bucket.zot_path("dup").encode() in original
    members = redis_server.command("SMEMBERS", f"{prefix}:blobs:duplicates:{bucket.ldig}")
    assert bucket.zot_path("orig").encode() not in members


def test_garbage_collection_of_the_original_leaves_the_stubs_their_bytes(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """zot's cache not readable here (another keyprefix): ocireg found the bytes for the
    stub itself, and looks through the repositories for the stubs when they go."""
    bucket = ZotBucket(seaweedfs, redis_server, uuid.uuid4().hex[:8])
    cfg = backend_config(tmp_path, seaweedfs, redis_server, f"/{bucket.root}", "other")
    cfg["storage"].update(gc=False, gcDelay="0s")
    registry = RegistryProcess(tmp_path, cfg)
    registry.start()
    try:
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            assert client.get(blob_path("dup", bucket.ldig)).content == bucket.layer
            assert client.delete(f"/v2/orig/manifests/{bucket.mdig}").status_code == 202
            gc = run_cli("gc", str(registry.config_path), "--repository", "orig")
            assert gc.returncode == 0, gc.stderr
            assert bucket.ldig in gc.stdout  # the layer was collected from `orig`
            assert client.get(blob_path("orig", bucket.ldig)).status_code == 404
            # this worker had noted where the bytes were: it finds them again
            assert client.get(blob_path("dup", bucket.ldig)).content == bucket.layer
    finally:
        registry.stop()
