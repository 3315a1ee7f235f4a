"""A blob being copied by another process of the instance (the lock holder) is streamed from
that copy's session file rather than after the whole copy: two ocireg processes on one root
stand in for two worker processes, so that the request surely reaches the one not copying.
The last byte still waits until the blob is stored verified: when the other copy fails its
digest check, the follower's response is cut short."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import OCI_MANIFEST, descriptor, image_manifest, sha256_digest
from tests.support.server import RegistryProcess, running_registry, wait_until
from tests.sync.conftest import sync_config

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = bytes(range(256)) * (32 << 10)  # 8 MiB
MANIFEST, _ = image_manifest(
    descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
    [descriptor("application/vnd.oci.image.layer.v1.tar", LAYER)],
)
LAYER_DIGEST = sha256_digest(LAYER)


class Gated(BaseHTTPRequestHandler):
    """The layer's first half at once, the second once `gate` is set (30 s at most); under
    `corrupt/` the second half is wrong (the digest check fails)."""

    protocol_version = "HTTP/1.1"
    gate = threading.Event()
    released = threading.Event()  # the second half went (the gate opened, or timed out)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v2/":
            return self._send(b"{}")
        if "/manifests/" in path:
            return self._send(MANIFEST, OCI_MANIFEST)
        if path.endswith(sha256_digest(CONFIG)):
            return self._send(CONFIG)
        half = len(LAYER) // 2
        self.send_response(200)
        self.send_header("Content-Length", str(len(LAYER)))
        self.end_headers()
        self.wfile.write(LAYER[:half])
        self.wfile.flush()
        self.gate.wait(timeout=30)
        self.released.set()
        rest = LAYER[half:]
        self.wfile.write(rest[::-1] if "/corrupt/" in path else rest)
        return None

    def _send(self, body: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryProcess]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gated)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    entry = {"urls": [f"http://127.0.0.1:{server.server_address[1]}"], "onDemand": True}
    workdir = tmp_path_factory.mktemp("elsewhere")
    try:
        # One worker each, one root: like two worker processes of one instance.
        with (
            running_registry(workdir, sync_config(workdir, [entry], 1), name="one") as one,
            running_registry(workdir, sync_config(workdir, [entry], 1), name="two") as two,
        ):
            yield [one, two]
    finally:
        server.shutdown()
        server.server_close()


def start_copy(proc: RegistryProcess, repo: str) -> threading.Thread:
    """A client of `proc` pulling the layer (its first pull: `proc` copies it), in the
    background; the upstream holds the layer's second half."""

    def pull() -> None:
        with httpx.Client(base_url=proc.url, timeout=60) as c:
            c.get(f"/v2/{repo}/manifests/v1")
            with contextlib.suppress(httpx.HTTPError):  # cut short when the copy fails
                c.get(f"/v2/{repo}/blobs/{LAYER_DIGEST}")

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    return thread


def session_started(root: Path, repo: str) -> bool:
    uploads = root / repo / ".uploads"
    return uploads.is_dir() and any(p.name.startswith(".sync-") for p in uploads.iterdir())


def follow_while_copied(
    one: RegistryProcess, two: RegistryProcess, repo: str, received: bytearray
) -> None:
    """`one` copies the layer (its client pulls it); a client of `two` pulls it meanwhile,
    into `received`. A response cut short raises once the copy in `one` has ended."""
    Gated.gate.clear()
    Gated.released.clear()
    copying = start_copy(one, repo)
    try:
        wait_until(lambda: session_started(one.root, repo), timeout=30)
        with httpx.stream("GET", f"{two.url}/v2/{repo}/blobs/{LAYER_DIGEST}", timeout=60) as r:
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == len(LAYER)
            for piece in r.iter_raw():
                # The first bytes came while the copy in `one` waited for the rest.
                assert received or not Gated.released.is_set()
                received += piece
                Gated.gate.set()
    finally:
        Gated.gate.set()
        copying.join(timeout=60)


def test_a_blob_copied_by_another_process_is_streamed_from_its_file(
    two_processes: list[RegistryProcess],
) -> None:
    one, two = two_processes
    received = bytearray()
    follow_while_copied(one, two, "follow/ok", received)
    assert received == LAYER
    assert (two.root / "follow/ok/blobs/sha256" / LAYER_DIGEST[7:]).read_bytes() == LAYER
    assert not session_started(one.root, "follow/ok")  # the marker goes with the copy


def test_a_copy_elsewhere_deduplicated_once_stored_is_still_streamed_whole(
    two_processes: list[RegistryProcess],
) -> None:
    """Another repository holds the layer already: once the copy is stored, dedupe makes
    the blob's file a link to that repository's copy (another inode than the file
    followed). The bytes followed were the verified ones: the follower gets all of them.
    (Whether the follower looks before or after the link is made is a race here, lost under
    load; tests/unit/test_sync_transfers.py has both orders.)"""
    one, two = two_processes
    Gated.gate.set()
    with httpx.Client(base_url=one.url, timeout=60) as c:
        c.get("/v2/follow/first/manifests/v1").raise_for_status()
        assert c.get(f"/v2/follow/first/blobs/{LAYER_DIGEST}").content == LAYER
    first = (one.root / "follow/first/blobs/sha256" / LAYER_DIGEST[7:]).stat()
    received = bytearray()
    follow_while_copied(one, two, "follow/again", received)
    assert received == LAYER
    stored = (two.root / "follow/again/blobs/sha256" / LAYER_DIGEST[7:]).stat()
    assert stored.st_ino == first.st_ino  # deduplicated: not the file followed


def test_a_failed_copy_elsewhere_cuts_the_followers_response(
    two_processes: list[RegistryProcess],
) -> None:
    one, two = two_processes
    received = bytearray()
    with pytest.raises(httpx.HTTPError):
        follow_while_copied(one, two, "follow/corrupt", received)
    assert 0 < len(received) < len(LAYER)  # streamed, then cut before the last byte
    assert not (two.root / "follow/corrupt/blobs/sha256" / LAYER_DIGEST[7:]).exists()
