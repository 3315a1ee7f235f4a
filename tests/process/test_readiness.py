"""/readyz follows storage: 503 while the root is unusable, 200 again once it is back."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.support.server import running_registry, wait_until


def test_readyz_is_503_while_storage_is_unusable(tmp_path: Path) -> None:
    with running_registry(tmp_path, workers=1) as proc:
        assert httpx.get(f"{proc.url}/readyz").status_code == 200
        shutil.rmtree(proc.root)
        proc.root.write_text("not a directory")  # the storage root is now unusable
        r = httpx.get(f"{proc.url}/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/json")
        assert httpx.get(f"{proc.url}/livez").status_code == 200  # alive, just not ready
        proc.root.unlink()
        wait_until(lambda: httpx.get(f"{proc.url}/readyz").status_code == 200, timeout=10)


def test_requests_get_503_json_while_storage_is_unusable(tmp_path: Path) -> None:
    with running_registry(tmp_path, workers=1) as proc:
        shutil.rmtree(proc.root, ignore_errors=True)
        proc.root.write_text("not a directory")
        r = httpx.post(f"{proc.url}/v2/some/repo/blobs/uploads/")
        assert r.status_code == 503
        assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
        proc.root.unlink()
        r = httpx.post(f"{proc.url}/v2/some/repo/blobs/uploads/")
        assert r.status_code == 202
