"""Instances on SeaweedFS + Redis, end to end over HTTP: zot's bucket layout, sessions
continued by another instance, index.json writers on two instances, losing Redis,
restarting SeaweedFS, and backends that are down."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS, running_seaweedfs, s3_request
from tests.support.oci import (
    Image,
    assert_error,
    blob_path,
    manifest_path,
    push_artifact,
    push_image,
    random_bytes,
    sha256_digest,
    start_upload,
    unique_repo,
)
from tests.support.server import (
    RegistryProcess,
    base_config,
    free_port,
    run_cli,
    running_registry,
    wait_until,
)

MiB = 1 << 20


def _instance(
    workdir: Path, seaweedfs: SeaweedFS, redis: Redis, root: str, prefix: str, name: str
) -> RegistryProcess:
    return RegistryProcess(
        workdir, backend_config(workdir / name, seaweedfs, redis, root, prefix), name=name
    ).start()


@pytest.fixture
def pair(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    """Two independent instances (no cluster) on one bucket root and one Redis prefix."""
    root, prefix = f"/p{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    a = _instance(tmp_path, seaweedfs, redis_server, root, prefix, "a")
    b = _instance(tmp_path, seaweedfs, redis_server, root, prefix, "b")
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def _pulls(client: httpx.Client, image: Image, ref: str) -> None:
    r = client.get(manifest_path(image.repo, ref), headers={"Accept": image.media_type})
    assert r.status_code == 200, r.text
    assert r.content == image.manifest
    for blob in [image.config, *image.layers]:
        got = client.get(blob_path(image.repo, sha256_digest(blob)))
        assert got.status_code == 200 and got.content == blob


def test_objects_use_zots_doubled_prefix(
    pair: tuple[RegistryProcess, RegistryProcess], seaweedfs: SeaweedFS
) -> None:
    a, _ = pair
    root = a.config["storage"]["storageDriver"]["rootdirectory"].strip("/")
    repo = unique_repo("layout")
    with httpx.Client(base_url=a.url, timeout=30) as client:
        image = push_image(client, repo, "v1")
    digest = sha256_digest(image.layers[0])
    for key in (f"{repo}/index.json", f"{repo}/oci-layout", f"{repo}/blobs/sha256/{digest[7:]}"):
        assert s3_request(seaweedfs.endpoint, "HEAD", f"{root}/{root}/{key}") == 200, key


def test_chunked_upload_continues_on_another_instance(
    pair: tuple[RegistryProcess, RegistryProcess],
) -> None:
    """end-5 across instances: chunk sizes chosen to hit every buffering case (a tail kept
    in the session object, a full part, a last part below 5 MiB)."""
    a, b = pair
    repo = unique_repo("chunked")
    data = random_bytes(1 * MiB + 6 * MiB + 9 * MiB + 100)
    sizes = [1 * MiB, 6 * MiB, 9 * MiB, 100]
    with httpx.Client(timeout=60) as client:
        location = a.url + start_upload(httpx.Client(base_url=a.url), repo)
        offset = 0
        for i, size in enumerate(sizes):
            base = (a if i % 2 == 0 else b).url
            path = httpx.URL(location).raw_path.decode()
            r = client.patch(
                base + path,
                content=data[offset : offset + size],
                headers={
                    "Content-Range": f"{offset}-{offset + size - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert r.status_code == 202, r.text
            offset += size
            assert r.headers["range"] == f"0-{offset - 1}"
            location = (
                base + r.headers["location"]
                if r.headers["location"].startswith("/")
                else r.headers["location"]
            )
        status = client.get(a.url + httpx.URL(location).raw_path.decode())
        assert status.status_code == 204 and status.headers["range"] == f"0-{offset - 1}"
        path = httpx.URL(location).raw_path.decode()
        r = client.put(b.url + path, params={"digest": sha256_digest(data)})
        assert r.status_code == 201, r.text
        got = client.get(
            a.url + blob_path(repo, sha256_digest(data)), headers={"Range": "bytes=7340032-7340041"}
        )
        assert got.status_code == 206 and got.content == data[7340032:7340042]


def test_wrong_digest_never_becomes_visible(pair: tuple[RegistryProcess, RegistryProcess]) -> None:
    a, b = pair
    repo = unique_repo("digest")
    data = random_bytes(7 * MiB)
    wrong = sha256_digest(b"something else")
    with httpx.Client(base_url=a.url, timeout=60) as client:
        location = start_upload(client, repo)
        assert client.patch(location, content=data).status_code == 202
    with httpx.Client(base_url=b.url, timeout=60) as client:
        r = client.put(httpx.URL(location).raw_path.decode(), params={"digest": wrong})
        assert_error(r, 400, "DIGEST_INVALID")
        assert client.head(blob_path(repo, wrong)).status_code == 404
        assert_error(client.get(blob_path(repo, sha256_digest(data))), 404, "BLOB_UNKNOWN")


def test_tag_writes_on_two_instances_lose_nothing(
    pair: tuple[RegistryProcess, RegistryProcess],
) -> None:
    """index.json is updated with conditional writes: no tag is lost between instances."""
    a, b = pair
    repo = unique_repo("tags")
    with httpx.Client(base_url=a.url, timeout=60) as client:
        image = push_image(client, repo, "base")

    def tag(i: int) -> int:
        base = (a if i % 2 else b).url
        with httpx.Client(base_url=base, timeout=60) as c:
            return c.put(
                manifest_path(repo, f"t{i}"),
                content=image.manifest,
                headers={"Content-Type": image.media_type},
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(tag, range(24))) == {201}
    with httpx.Client(base_url=b.url, timeout=30) as client:
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert sorted(tags) == sorted(["base", *(f"t{i}" for i in range(24))])


def test_redis_flushed_then_rebuild_meta_then_every_image_pulls(
    pair: tuple[RegistryProcess, RegistryProcess], redis_server: Redis
) -> None:
    a, b = pair
    repo = unique_repo("rebuild")
    with httpx.Client(base_url=a.url, timeout=60) as client:
        images = [push_image(client, repo, f"v{i}") for i in range(3)]
        signature = push_artifact(client, repo, images[0], "application/vnd.example.sig")
    redis_server.command("FLUSHALL")
    # Beside the running instances, with their config: it must not need (or bind) the port.
    done = run_cli("rebuild-meta", str(a.config_path))
    assert done.returncode == 0, done.stderr
    assert "rebuilt" in done.stdout
    prefix = a.config["storage"]["cacheDriver"]["keyprefix"]
    assert redis_server.command("EXISTS", f"{prefix}:ocireg:ready").strip() == b":1"
    with httpx.Client(base_url=b.url, timeout=60) as client:
        for i, image in enumerate(images):
            _pulls(client, image, f"v{i}")
            _pulls(client, image, image.digest)
        r = client.get(f"/v2/{repo}/referrers/{images[0].digest}")
        assert [d["digest"] for d in r.json()["manifests"]] == [signature.digest]


def test_rebuild_meta_refused_by_redis_midway_is_a_clean_error(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """A Redis that answers the start-up PING but refuses what clearing needs (here an ACL
    without SCAN and DEL; a Redis lost at that moment looks the same): one line, exit 2."""
    user = f"limited{uuid.uuid4().hex[:8]}"
    reply = redis_server.command("ACL", "SETUSER", user, "on", ">secret", "~*", "+ping", "+exists")
    assert reply.startswith(b"+OK"), reply
    cfg = backend_config(tmp_path, seaweedfs, redis_server, "/acl", f"acl{uuid.uuid4().hex[:8]}")
    cfg["storage"]["cacheDriver"]["url"] = f"redis://{user}:secret@127.0.0.1:{redis_server.port}"
    path = tmp_path / "acl.json"
    path.write_text(json.dumps(cfg))
    done = run_cli("rebuild-meta", str(path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"redis redis://***@127.0.0.1:{redis_server.port}" in done.stderr
    assert "scan" in done.stderr.lower() and "secret" not in done.stderr


def test_flushed_redis_is_rebuilt_automatically(
    pair: tuple[RegistryProcess, RegistryProcess], redis_server: Redis
) -> None:
    a, _ = pair
    repo = unique_repo("autorebuild")
    prefix = a.config["storage"]["cacheDriver"]["keyprefix"]
    with httpx.Client(base_url=a.url, timeout=60) as client:
        image = push_image(client, repo, "v1")
        signature = push_artifact(client, repo, image, "application/vnd.example.sig")
        redis_server.command("FLUSHALL")
        # Answered from storage meanwhile, and the request starts the rebuild.
        r = client.get(f"/v2/{repo}/referrers/{image.digest}")
        assert [d["digest"] for d in r.json()["manifests"]] == [signature.digest]
        wait_until(
            lambda: redis_server.command("EXISTS", f"{prefix}:ocireg:ready").strip() == b":1"
        )
        r = client.get(f"/v2/{repo}/referrers/{image.digest}")
        assert [d["digest"] for d in r.json()["manifests"]] == [signature.digest]


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


def _down_config(tmp_path: Path, **driver: Any) -> dict[str, Any]:
    cfg = base_config(tmp_path / "root")
    cfg["storage"]["storageDriver"] = {
        "name": "s3",
        "bucket": "b",
        "region": "us-east-1",
        "accesskey": "k",
        "secretkey": "s",
        **driver,
    }
    return cfg


def test_unreachable_s3_is_a_clear_startup_error(tmp_path: Path) -> None:
    port = free_port()
    cfg = _down_config(tmp_path, regionendpoint=f"http://127.0.0.1:{port}", secure=False)
    path = tmp_path / "down.json"
    path.write_text(json.dumps(cfg))
    done = run_cli("serve", str(path), timeout=60)
    assert done.returncode != 0
    assert f"http://127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_unreachable_redis_is_a_clear_startup_error(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    port = free_port()
    cfg = base_config(tmp_path / "root")
    cfg["storage"]["storageDriver"] = seaweedfs.storage_driver("/down")
    cfg["storage"]["remoteCache"] = True
    cfg["storage"]["cacheDriver"] = {"name": "redis", "url": f"redis://127.0.0.1:{port}"}
    path = tmp_path / "down.json"
    path.write_text(json.dumps(cfg))
    done = run_cli("serve", str(path), timeout=60)
    assert done.returncode != 0
    assert f"redis://127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_seaweedfs_down_is_503_then_restart_serves_again(
    tmp_path: Path, redis_server: Redis
) -> None:
    """A private SeaweedFS: killed while the instance runs (JSON 503 per request, promptly),
    then restarted on the same data: every image pulls again."""
    with running_seaweedfs(tmp_path / "weed") as weed:
        cfg = backend_config(tmp_path, weed, redis_server, "/restart", uuid.uuid4().hex[:8])
        proc = RegistryProcess(tmp_path, cfg, name="restart").start()
        try:
            repo = unique_repo("restart")
            absent = sha256_digest(b"never pushed")
            with httpx.Client(base_url=proc.url, timeout=60) as client:
                image = push_image(client, repo, "v1", layer_size=3 * MiB)
                weed.stop()
                assert_error(client.get(blob_path(repo, image.digest)), 503, "UNAVAILABLE")
                assert_error(client.get(blob_path(repo, absent)), 503, "UNAVAILABLE")
                # The manifest and the tags come from Redis and the worker's caches when the
                # worker that answers has them (registry/versions.py), else storage: 503.
                for path in (manifest_path(repo, "v1"), f"/v2/{repo}/tags/list"):
                    r = client.get(path, headers={"Accept": image.media_type})
                    if r.status_code != 200:
                        assert_error(r, 503, "UNAVAILABLE")
                    elif "manifests" in path:
                        assert r.content == image.manifest
                    else:
                        assert r.json()["tags"] == ["v1"]
                weed.start()
                _pulls(client, image, "v1")
        finally:
            proc.stop()


def test_missing_bucket_is_a_clear_startup_error(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    cfg = base_config(tmp_path / "root")
    cfg["storage"]["storageDriver"] = seaweedfs.storage_driver("/x", bucket="no-such-bucket")
    path = tmp_path / "nobucket.json"
    path.write_text(json.dumps(cfg))
    done = run_cli("serve", str(path), timeout=60)
    assert done.returncode != 0
    assert "no-such-bucket" in done.stderr and "does not exist" in done.stderr
    assert seaweedfs.endpoint in done.stderr and "Traceback" not in done.stderr
