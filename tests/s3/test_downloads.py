"""Blob downloads from S3 whose clients stop reading: the worker streams them through
Python (there is no local file to hand to Granian), so what it holds per stalled download
is its queued pieces."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx

from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS
from tests.support.downloads import rss_mib, stalled_downloads
from tests.support.oci import sha256_digest
from tests.support.server import RegistryProcess

REPO = "s3dl/big"


def test_stalled_s3_downloads_hold_little_memory(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    cfg = backend_config(
        tmp_path, seaweedfs, redis_server, f"/dl{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    )
    cfg["http"]["workers"] = 1
    registry = RegistryProcess(tmp_path, cfg).start()
    try:
        data = os.urandom(48 * 1024 * 1024)
        digest = sha256_digest(data)
        with httpx.Client(base_url=registry.url, timeout=120) as c:
            location = c.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
            assert c.put(location, params={"digest": digest}, content=data).status_code == 201
        (worker,) = registry.worker_pids()
        before = rss_mib(worker)
        clients = 12
        with stalled_downloads(registry.port, f"/v2/{REPO}/blobs/{digest}", clients, worker):
            grown = rss_mib(worker) - before
            # 1 MiB pieces held ~6.8 MiB per stalled download, 256 KiB pieces ~2.7.
            assert grown < clients * 4.5, f"{grown:.0f} MiB for {clients} stalled downloads"
        with httpx.Client(
            base_url=registry.url, timeout=120
        ) as c:  # a reading client still gets the whole blob
            r = c.get(f"/v2/{REPO}/blobs/{digest}")
            assert r.status_code == 200
            assert r.content == data
    finally:
        registry.stop()
