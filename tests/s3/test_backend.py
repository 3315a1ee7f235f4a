"""Two instances on one SeaweedFS bucket and one Redis, end to end over HTTP: zot's bucket
layout, sessions continued by another instance, index.json writers on both, losing Redis.
(A bucket zot wrote: test_zot_bucket.py; backends that are down: test_outages.py.)"""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS, s3_request
from tests.support.cluster import running_members
from tests.support.oci import (
    assert_error,
    assert_image_pulls,
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
    run_cli,
    wait_until,
)

MiB = 1 << 20


@pytest.fixture
def pair(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    """Two independent instances (no cluster) on one bucket root and one Redis prefix,
    started together (`running_members` waits for each only once both are starting)."""
    root, prefix = f"/p{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    configs = [
        backend_config(tmp_path / name, seaweedfs, redis_server, root, prefix)
        for name in ("a", "b")
    ]
    with running_members(tmp_path, configs, names=["a", "b"]) as (a, b):
        yield a, b


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


def test_redis_flushed_then_rebuild_meta_then_every_imageassert_image_pulls(
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
            assert_image_pulls(client, image, f"v{i}")
            assert_image_pulls(client, image, image.digest)
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
