"""A bucket as zot leaves it (dedupe stubs, its Redis hash, `"manifests": null`) served as
is by an ocireg on SeaweedFS + Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS, s3_request
from tests.support.oci import blob_path, manifest_path, random_bytes, sha256_digest
from tests.support.server import running_registry


def test_existing_zot_bucket_is_readable(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """A bucket as zot leaves it with dedupe: doubled prefix, `"manifests": null` in a new
    index.json, and a zero-byte stub whose original is recorded in zot's Redis hash."""
    root, prefix = f"z{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    layer = random_bytes(2048)
    config = b'{"architecture":"amd64","os":"linux"}'
    ldig, cdig = sha256_digest(layer), sha256_digest(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cdig,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": ldig,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    mdig = sha256_digest(manifest)

    def put(key: str, body: bytes) -> None:
        assert s3_request(seaweedfs.endpoint, "PUT", f"{root}/{root}/{key}", body) == 200

    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdig,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "1.0"},
            }
        ],
    }
    for repo, layer_bytes in (("orig", layer), ("dup", b"")):
        put(f"{repo}/oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        put(f"{repo}/index.json", json.dumps(index).encode())
        put(f"{repo}/blobs/sha256/{mdig[7:]}", manifest)
        put(f"{repo}/blobs/sha256/{cdig[7:]}", config)
        put(f"{repo}/blobs/sha256/{ldig[7:]}", layer_bytes)  # b"": zot's dedupe stub
    put("fresh/oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    put("fresh/index.json", b'{"schemaVersion":2,"manifests":null}')
    redis_server.command(
        "HSET", f"{prefix}:blobs:original", ldig, f"/{root}/orig/blobs/sha256/{ldig[7:]}"
    )
    cfg = backend_config(tmp_path, seaweedfs, redis_server, f"/{root}", prefix)
    with (
        running_registry(tmp_path, cfg, name="zot-bucket") as proc,
        httpx.Client(base_url=proc.url, timeout=30) as client,
    ):
        assert client.get("/v2/_catalog").json()["repositories"] == ["dup", "fresh", "orig"]
        for repo in ("orig", "dup"):
            assert client.get(manifest_path(repo, "1.0")).content == manifest
            head = client.head(blob_path(repo, ldig))
            assert head.status_code == 200 and head.headers["content-length"] == str(len(layer))
            assert client.get(blob_path(repo, ldig)).content == layer
        assert client.get("/v2/fresh/tags/list").json()["tags"] in ([], None)
        # A mount from the repository that holds the stub copies the bytes the stub stands
        # for: the copy stays whole when the original goes.
        mount = client.post("/v2/copy/blobs/uploads/", params={"mount": ldig, "from": "dup"})
        assert mount.status_code == 201
        original = f"{root}/{root}/orig/blobs/sha256/{ldig[7:]}"
        assert s3_request(seaweedfs.endpoint, "DELETE", original) in (200, 204)
        assert client.get(blob_path("copy", ldig)).content == layer
