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
from tests.support.downloads import (
    begun_download,
    bytes_read,
    reading_stopped,
    rss_mib,
    stalled_downloads,
)
from tests.support.oci import sha256_digest
from tests.support.server import RegistryProcess

REPO = "s3dl/big"


def _push(registry: RegistryProcess, data: bytes) -> str:
    digest = sha256_digest(data)
    with httpx.Client(base_url=registry.url, timeout=120) as c:
        location = c.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        assert c.put(location, params={"digest": digest}, content=data).status_code == 201
    return digest


def _one_worker(tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis) -> RegistryProcess:
    cfg = backend_config(
        tmp_path, seaweedfs, redis_server, f"/dl{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    )
    cfg["http"]["workers"] = 1
    return RegistryProcess(tmp_path, cfg).start()


def _served_whole(registry: RegistryProcess, digest: str, data: bytes) -> None:
    """A GET of the whole blob answers its bytes exactly, and nothing failed on the way."""
    with httpx.Client(base_url=registry.url, timeout=120) as c:
        r = c.get(f"/v2/{REPO}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert "Traceback" not in registry.logs()


def test_stalled_s3_downloads_hold_little_memory(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    registry = _one_worker(tmp_path, seaweedfs, redis_server)
    try:
        data = os.urandom(48 * 1024 * 1024)
        digest = _push(registry, data)
        (worker,) = registry.worker_pids()
        before = rss_mib(worker)
        clients = 12
        with stalled_downloads(registry.port, f"/v2/{REPO}/blobs/{digest}", clients, worker):
            grown = rss_mib(worker) - before
            # 1 MiB pieces held ~6.8 MiB per stalled download, 256 KiB pieces ~2.7.
            assert grown < clients * 4.5, f"{grown:.0f} MiB for {clients} stalled downloads"
        _served_whole(registry, digest, data)  # a reading client still gets the whole blob
    finally:
        registry.stop()


def test_s3_ranges_match_the_blob_byte_for_byte(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """The body is sent in the pieces the S3 connection received (storage/s3/download.py):
    ranges that start and end inside and across such pieces, and the whole blob, are the
    stored bytes exactly."""
    registry = _one_worker(tmp_path, seaweedfs, redis_server)
    try:
        size = 6 * 1024 * 1024 + 12345
        data = os.urandom(size)
        digest = _push(registry, data)
        piece = 256 * 1024
        ranges = [
            (0, 0),
            (1, piece + 1),
            (piece - 1, piece),
            (piece * 3 + 7, piece * 17 - 3),
            (size - piece - 5, size - 1),
            (size - 1, size - 1),
        ]
        with httpx.Client(base_url=registry.url, timeout=120) as c:
            url = f"/v2/{REPO}/blobs/{digest}"
            for first, last in ranges:
                r = c.get(url, headers={"Range": f"bytes={first}-{last}"})
                assert r.status_code == 206, (first, last)
                assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
                assert r.content == data[first : last + 1], (first, last)
            r = c.get(url, headers={"Range": f"bytes={size // 2}-"})
            assert r.status_code == 206
            assert r.content == data[size // 2 :]
        _served_whole(registry, digest, data)
    finally:
        registry.stop()


def test_s3_download_abandoned_by_its_client_stops_reading_s3(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """A client that hangs up after the first MiB: the worker stops reading the object
    (nothing left reading it in the background), and serves the next download whole."""
    registry = _one_worker(tmp_path, seaweedfs, redis_server)
    try:
        size = 64 * 1024 * 1024
        data = os.urandom(size)
        digest = _push(registry, data)
        (worker,) = registry.worker_pids()
        path = f"/v2/{REPO}/blobs/{digest}"
        before = bytes_read(worker)
        begun_download(registry.port, path).close()
        reading_stopped(worker, interval=0.5)
        read = bytes_read(worker) - before
        assert read < size // 4, f"{read >> 20} MiB of {size >> 20} read for a 1 MiB download"
        _served_whole(registry, digest, data)
    finally:
        registry.stop()
