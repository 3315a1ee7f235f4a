"""Several clients upload the same blob into the same repository at the same moment."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.process.conftest import StartRegistry
from tests.process.helpers import (
    OCTET,
    assert_store_sound,
    fresh_client,
    sha256,
    start_upload,
    with_digest,
)

CLIENTS = 8


def test_eight_clients_push_same_blob_at_once(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=2)
    repo = "race/same-blob"
    data = os.urandom(4 * 1024 * 1024 + 3)
    digest = sha256(data)
    half = len(data) // 2
    # Line the clients up twice: all sessions open before any data flows, and all bodies
    # sent before any commit, so the final verify-and-rename steps really overlap.
    opened = threading.Barrier(CLIENTS, timeout=60)
    uploaded = threading.Barrier(CLIENTS, timeout=60)

    def one(_: int) -> httpx.Response:
        with fresh_client(registry) as c:
            location = start_upload(c, repo)
            opened.wait()
            for part in (data[:half], data[half:]):
                r = c.patch(location, content=part, headers=OCTET)
                assert r.status_code == 202, (r.status_code, r.text)
                location = r.headers["Location"]
            uploaded.wait()
            return c.put(with_digest(location, digest))

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(one, range(CLIENTS)))

    assert [r.status_code for r in results] == [201] * CLIENTS, [r.text for r in results]
    assert {r.headers["Docker-Content-Digest"] for r in results} == {digest}
    with fresh_client(registry) as c:
        r = c.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == digest
        assert sha256(r.content) == digest

    repo_dir = registry.root / repo
    assert [p.name for p in (repo_dir / "blobs" / "sha256").iterdir()] == [digest[7:]]
    uploads = repo_dir / ".uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert_store_sound(registry.root)
