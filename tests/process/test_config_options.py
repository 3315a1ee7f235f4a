"""storage.commit and log.output, on a real server process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from tests.support.oci import push_blob_chunked, push_image, random_blob
from tests.support.server import base_config, running_registry, wait_until


def test_commit_and_log_output(tmp_path: Path) -> None:
    """With storage.commit (fsync before visibility) pushes and pulls work as usual, and the
    log file gets one JSON object per line, each carrying the request id of its request."""
    log_file = tmp_path / "logs" / "ocireg.jsonl"
    config = base_config(tmp_path / "root", workers=2)
    config["storage"]["commit"] = True
    config["log"] = {"level": "info", "output": str(log_file)}
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        data, digest = random_blob(3 * 1024 * 1024 + 5)
        assert push_blob_chunked(c, "committed/app", data, 1024 * 1024).status_code == 201
        image = push_image(c, "committed/app", "v1")
        got = c.get(f"/v2/committed/app/blobs/{digest}")
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == digest.split(":", 1)[1]
        blob_rid = got.headers["x-request-id"]
        r = c.get("/v2/committed/app/manifests/v1")
        assert r.headers["docker-content-digest"] == image.digest
        rid = r.headers["x-request-id"]

        def logged(request_id: str) -> list[dict[str, object]]:
            lines = log_file.read_text().splitlines() if log_file.exists() else []
            return [json.loads(line) for line in lines if request_id in line]

        entries = wait_until(lambda: logged(rid), timeout=10)
        assert any(e.get("path") == "/v2/committed/app/manifests/v1" for e in entries)
        # The blob went out as a file sent by Granian itself; the access log still counts it.
        access = [e for e in wait_until(lambda: logged(blob_rid), timeout=10) if "status" in e]
        assert access and access[0]["bytes_out"] == len(data)
        for line in log_file.read_text().splitlines():
            assert "request_id" in json.loads(line)
