"""Pull-through with the image store on SeaweedFS (S3) and the metadata in Redis: the copy
goes through the same store API, so multi-arch images, referrers, once-only fetches and
serving the cache while the upstream is down hold there too."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx

from tests.conftest import use_backend
from tests.ops.conftest import scrape, value
from tests.support.backends import Redis, SeaweedFS
from tests.support.oci import image_index, push_image, push_manifest, sha256_digest, unique_repo
from tests.support.server import running_registry, wait_until
from tests.sync.conftest import docker_registry, sync_config

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def test_pull_through_onto_s3_and_redis(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    repo = unique_repo("s3sync")
    with docker_registry(tmp_path / "up") as upstream:
        with httpx.Client(base_url=upstream.url, timeout=30) as up:
            amd = push_image(up, repo, layers=2, layer_size=200_000)
            arm = push_image(up, repo, layers=2, layer_size=200_000)
            body, digest = image_index([amd.descriptor(), arm.descriptor()])
            assert push_manifest(up, repo, "v1", body, OCI_INDEX).status_code == 201
            signature = push_image(up, repo, digest.replace(":", "-") + ".sig")
        config = sync_config(tmp_path, [{"urls": [upstream.url], "onDemand": True}])
        use_backend(config, seaweedfs, redis_server, "/sync", "sync")
        with running_registry(tmp_path, config, name="mirror") as proc:
            path = f"{proc.url}/v2/{repo}/manifests/v1"

            def pull(_: int) -> int:
                return httpx.get(path, headers={"Accept": OCI_INDEX}, timeout=60).status_code

            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                assert list(pool.map(pull, range(6))) == [200] * 6

            def misses() -> float:
                return value(scrape(proc.url), "ocireg_sync_on_demand_total", result="miss")

            wait_until(lambda: misses() >= 1)  # counted when the copy behind the answer ends
            assert misses() == 1
            upstream.stop()
            with httpx.Client(base_url=proc.url, timeout=30) as c:
                r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_INDEX})
                assert r.status_code == 200 and r.content == body
                for image in (amd, arm):
                    assert c.get(f"/v2/{repo}/manifests/{image.digest}").content == image.manifest
                    for layer in image.layers:
                        assert c.get(f"/v2/{repo}/blobs/{sha256_digest(layer)}").content == layer
                tags = c.get(f"/v2/{repo}/tags/list").json()["tags"]
                assert sorted(tags) == sorted(["v1", digest.replace(":", "-") + ".sig"])
                r = c.get(f"/v2/{repo}/manifests/{signature.digest}")
                assert r.status_code == 200
