"""Upload sessions across Granian worker processes, and a worker killed mid-upload.

The server does not say which process answered; the tests read that from /proc (which
worker process holds the server side of the connection, see helpers.served_by), so they
prove rather than hope that requests were spread.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.process.conftest import StartRegistry
from tests.process.helpers import (
    OCTET,
    assert_store_sound,
    connections_by_worker,
    fresh_client,
    push_blob,
    push_manifest,
    served_by,
    serving_processes,
    sha256,
    start_upload,
    with_digest,
)
from tests.support.server import RegistryProcess, wait_until


@pytest.mark.parametrize("mode", ["streamed", "content-range"])
def test_chunks_on_different_workers_make_one_blob(
    start_registry: StartRegistry, mode: str
) -> None:
    registry = start_registry(workers=4)
    wait_until(lambda: len(serving_processes(registry)) == 4)
    repo = "spread/chunks"
    chunk = 128 * 1024
    data = os.urandom(12 * chunk + 1000)  # the last chunk is short
    pids: list[int] = []

    with fresh_client(registry) as c:
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        pids.append(served_by(registry, r))
        location = r.headers["Location"]

    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        end = start + len(part) - 1
        headers = dict(OCTET)
        if mode == "content-range":
            headers["Content-Range"] = f"{start}-{end}"
        # One connection per request: each is accepted by whichever worker the kernel picks.
        with fresh_client(registry) as c:
            r = c.patch(location, content=part, headers=headers)
            assert r.status_code == 202, (r.status_code, r.text)
            assert r.headers["Range"] == f"0-{end}"
            pids.append(served_by(registry, r))
            location = r.headers["Location"]
        # The session's progress is visible from any other connection (and worker).
        with fresh_client(registry) as c:
            s = c.get(location)
            assert s.status_code == 204, s.text
            assert s.headers["Range"] == f"0-{end}"
            pids.append(served_by(registry, s))

    with fresh_client(registry) as c:
        r = c.put(with_digest(location, sha256(data)))
        assert r.status_code == 201, r.text
        pids.append(served_by(registry, r))
        assert r.headers["Docker-Content-Digest"] == sha256(data)
        got = c.get(f"/v2/{repo}/blobs/{sha256(data)}")
        assert got.status_code == 200
        assert got.content == data

    # 26 fresh connections over 4 workers: all on one worker would mean no spreading at all.
    assert len(set(pids)) >= 2, f"every request was served by one worker: {pids}"
    assert_store_sound(registry.root)


@dataclass
class Upload:
    data: bytes
    streaming: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False
    status: int | None = None
    attempts: int = 0


def paused_body(u: Upload, go: threading.Event, pause: bool) -> Iterator[bytes]:
    """Send a first piece, then hold the request open until the test has killed a worker."""
    piece = 256 * 1024
    yield u.data[:piece]
    u.streaming.set()
    if pause:
        go.wait(60)
    for start in range(piece, len(u.data), piece):
        yield u.data[start : start + piece]


def upload_with_retry(registry: RegistryProcess, repo: str, u: Upload, go: threading.Event) -> None:
    """A client that, like a real one, starts over when its connection dies."""
    for attempt in range(4):
        u.attempts = attempt + 1
        try:
            with fresh_client(registry) as c:
                location = start_upload(c, repo)
            with fresh_client(registry) as c:
                body = paused_body(u, go, pause=attempt == 0)
                r = c.patch(location, content=body, headers=OCTET)
                assert r.status_code == 202, (r.status_code, r.text)
                r = c.put(with_digest(r.headers["Location"], sha256(u.data)))
                u.status = r.status_code
                return
        except httpx.TransportError:
            u.interrupted = True
            u.streaming.set()
            go.wait(60)  # retry once the worker is dead, not against it


def test_worker_killed_during_uploads(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=2)
    before = wait_until(lambda: (s := serving_processes(registry)) and len(s) == 2 and s)
    repo = "kill/worker"
    go = threading.Event()
    stop_tagging = threading.Event()
    tagged: list[tuple[str, str]] = []

    # Meanwhile index.json keeps being rewritten, so a worker may die in the middle of that.
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(1024)
    with fresh_client(registry) as c:
        for blob in (config, layer):
            assert push_blob(c, repo, blob).status_code == 201

    def tagger() -> None:
        for i in range(10_000):
            if stop_tagging.is_set():
                return
            try:
                with fresh_client(registry) as c:
                    cfg = config[:-1] + b',"n":%d}' % i
                    assert push_blob(c, repo, cfg, chunks=1).status_code == 201
                    digest, _ = push_manifest(c, repo, f"t{i}", cfg, [layer])
                    tagged.append((f"t{i}", digest))
            except httpx.TransportError:
                continue

    uploads: list[Upload] = []
    with ThreadPoolExecutor(16) as pool:
        futures = []
        holding: dict[int, set[int]] = {}
        # Start uploads until both workers hold at least one paused upload connection.
        for _ in range(12):
            u = Upload(os.urandom(2 * 1024 * 1024 + len(uploads)))
            uploads.append(u)
            futures.append(pool.submit(upload_with_retry, registry, repo, u, go))
            assert u.streaming.wait(30), "upload did not start"

            def accepted() -> dict[int, set[int]]:
                conns = {p: ports for p, ports in connections_by_worker(registry).items() if ports}
                # Connections still in the accept queue belong to nobody yet; wait for them.
                return conns if sum(map(len, conns.values())) >= len(uploads) else {}

            holding = wait_until(accepted, timeout=15)
            if len(uploads) >= 4 and len(holding) >= 2:
                break
        assert len(holding) >= 2, f"all paused uploads sit on one worker: {holding}"
        victim = max(holding, key=lambda pid: len(holding[pid]))
        assert victim in before
        # Started only now so that its connections did not blur the count above.
        tag_future = pool.submit(tagger)
        wait_until(lambda: len(tagged) >= 2, timeout=60)

        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in serving_processes(registry), timeout=15)
        go.set()
        for f in futures:
            f.result(timeout=180)
        stop_tagging.set()
        tag_future.result(timeout=60)

    assert [u.status for u in uploads] == [201] * len(uploads)
    assert any(u.interrupted for u in uploads), "no upload was on the killed worker"
    assert any(u.attempts == 1 for u in uploads), "no upload survived on the other worker"

    # Granian replaces the dead worker and the newcomer serves requests.
    try:
        now = wait_until(
            lambda: (s := serving_processes(registry)) and len(s) == 2 and s - before and s,
            timeout=30,
        )
    except TimeoutError:
        pytest.fail(
            f"the killed worker was not replaced (Granian respawn_failed_workers?)\n"
            f"{registry.logs()}"
        )
    newcomer = next(iter(now - before))

    def newcomer_serves() -> bool:
        with fresh_client(registry) as c:
            r = c.get("/v2/")
            return r.status_code == 200 and served_by(registry, r) == newcomer

    wait_until(newcomer_serves, timeout=30, interval=0)

    with fresh_client(registry) as c:
        for u in uploads:
            r = c.get(f"/v2/{repo}/blobs/{sha256(u.data)}")
            assert r.status_code == 200
            assert sha256(r.content) == sha256(u.data)
        for tag, digest in tagged:
            r = c.head(f"/v2/{repo}/manifests/{tag}")
            assert r.status_code == 200, tag
            assert r.headers["Docker-Content-Digest"] == digest
    assert_store_sound(registry.root)
