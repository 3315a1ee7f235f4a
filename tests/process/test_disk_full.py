"""Storage that refuses writes mid-upload (a full disk): the spec's JSON error, nothing
visible that was not verified, and the server goes on serving.

The server runs with RLIMIT_FSIZE at 8 MiB, so writing past 8 MiB into any file fails with
EFBIG the way a full disk fails with ENOSPC, from the same write calls.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.ops.conftest import scrape, value
from tests.process.helpers import (
    OCTET,
    assert_store_sound,
    fresh_client,
    push_blob,
    sha256,
    start_upload,
    with_digest,
)
from tests.support.server import RegistryProcess, base_config

LIMIT = 8 * 1024 * 1024
UPLOAD_SESSION = "/v2/{name:path}/blobs/uploads/{session}"
REPO = "full/disk"


@pytest.fixture
def registry(tmp_path: Path) -> RegistryProcess:
    cfg = base_config(tmp_path / "root", workers=1)
    proc = RegistryProcess(tmp_path, cfg, max_file_size=LIMIT).start()
    yield proc
    proc.stop()


def _assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"errors"}
    assert body["errors"][0]["code"] == "UNAVAILABLE"
    assert "File too large" in str(body["errors"][0].get("detail"))


def test_a_monolithic_push_past_the_limit_is_refused_cleanly(registry: RegistryProcess) -> None:
    data = os.urandom(2 * LIMIT)  # past the limit several batches into the body
    with fresh_client(registry) as c:
        location = start_upload(c, REPO)
        r = c.put(with_digest(location, sha256(data)), content=data, headers=OCTET)
        _assert_unavailable(r)
        assert c.head(f"/v2/{REPO}/blobs/{sha256(data)}").status_code == 404
        # Still serving, and what fits is stored as usual.
        small = os.urandom(3 * 1024 * 1024)
        assert push_blob(c, REPO, small, chunks=3).status_code == 201
        r = c.get(f"/v2/{REPO}/blobs/{sha256(small)}")
        assert r.status_code == 200
        assert r.content == small
    assert_store_sound(registry.root)
    assert "Traceback" not in registry.logs()


def test_a_chunk_past_the_limit_leaves_a_session_that_says_where_it_stands(
    registry: RegistryProcess,
) -> None:
    first = os.urandom(LIMIT - 1024 * 1024)
    second = os.urandom(4 * 1024 * 1024)
    with fresh_client(registry) as c:
        location = start_upload(c, REPO)
        r = c.patch(location, content=first, headers=OCTET)
        assert r.status_code == 202
        location = r.headers["Location"]
        r = c.patch(location, content=second, headers=OCTET)
        _assert_unavailable(r)
        # The session reports the bytes it holds; the digest of the whole never verifies
        # against a short file, so nothing unverified can become a blob.
        r = c.get(location)
        assert r.status_code == 204
        end = int(r.headers["Range"].split("-")[1])
        assert len(first) - 1 <= end < LIMIT
        r = c.put(with_digest(location, sha256(first + second)))
        assert r.status_code == 400
        assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert c.head(f"/v2/{REPO}/blobs/{sha256(first + second)}").status_code == 404
    assert_store_sound(registry.root)
    assert "Traceback" not in registry.logs()


def test_client_access_log_and_metrics_agree_on_a_storage_failure(tmp_path: Path) -> None:
    cfg = base_config(tmp_path / "root", workers=1)
    cfg["extensions"] = {"metrics": {"enable": True, "prometheus": {"path": "/metrics"}}}
    proc = RegistryProcess(tmp_path, cfg, max_file_size=LIMIT).start()
    try:
        data = os.urandom(2 * LIMIT)
        with fresh_client(proc) as c:
            location = start_upload(c, REPO)
            _assert_unavailable(c.put(with_digest(location, sha256(data)), content=data))
        samples = scrape(proc.url)
        total = "ocireg_http_requests_total"
        assert value(samples, total, method="PUT", route=UPLOAD_SESSION, status="503") == 1
        assert value(samples, total, status="500") == 0
        access = [json.loads(line) for line in proc.logs().splitlines() if '"PUT"' in line]
        assert [entry.get("status") for entry in access if entry.get("method") == "PUT"] == [503]
    finally:
        proc.stop()
