"""S3 and Redis that are down or missing: a clear error at start-up, JSON 503 per request
while SeaweedFS is down, and everything served again once it is back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS, running_seaweedfs
from tests.support.oci import (
    assert_error,
    assert_image_pulls,
    blob_path,
    manifest_path,
    push_image,
    sha256_digest,
    unique_repo,
)
from tests.support.server import RegistryProcess, base_config, free_port, run_cli

MiB = 1 << 20


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
                assert_image_pulls(client, image, "v1")
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


@pytest.mark.parametrize(("command", "status"), [("gc", 2), ("scrub", 1)])
def test_gc_and_scrub_stop_on_a_missing_bucket(
    tmp_path: Path, seaweedfs: SeaweedFS, command: str, status: int
) -> None:
    """A sub path whose bucket does not exist: `gc` and `scrub` say so and fail (a missing
    bucket lists as empty, and a run over it would report nothing to do)."""
    cfg = base_config(tmp_path / "root")
    sub = {"storageDriver": seaweedfs.storage_driver("/x", bucket="no-such-bucket")}
    cfg["storage"]["subPaths"] = {"/ext": sub}
    path = tmp_path / "nobucket.json"
    path.write_text(json.dumps(cfg))
    done = run_cli(command, str(path), timeout=60)
    assert done.returncode == status, done.stderr
    assert "no-such-bucket" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
