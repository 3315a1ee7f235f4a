"""Blob downloads: whole, ranged, abandoned by the client, stalled by many clients.

A worker streams one large download at a time itself, reading the file in pieces while it
sends; a client that goes away must not leave it reading (or holding open) a file nobody
receives. Further downloads are sent by Granian from the file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.process.conftest import StartRegistry
from tests.process.helpers import fresh_client, push_blob, serving_processes, sha256
from tests.support.downloads import bytes_read, rss_mib, stalled_downloads
from tests.support.server import wait_until

REPO = "dl/big"


def _open_files(pid: int) -> set[str]:
    names = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            names.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed while listing
            continue
    return names


def test_whole_and_ranged_downloads_of_a_multi_piece_blob(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=1)
    data = os.urandom(5 * 1024 * 1024 + 123)  # several read pieces and a short last one
    digest = sha256(data)
    with fresh_client(registry) as c:
        assert push_blob(c, REPO, data).status_code == 201
        r = c.get(f"/v2/{REPO}/blobs/{digest}")
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        assert r.content == data
        start, end = 1024 * 1024 - 7, 3 * 1024 * 1024 + 5  # across piece boundaries
        r = c.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": f"bytes={start}-{end}"})
        assert r.status_code == 206
        assert r.content == data[start : end + 1]


def test_an_abandoned_download_releases_the_file(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=1)
    data = os.urandom(96 * 1024 * 1024)  # far more than socket buffers hold
    digest = sha256(data)
    with fresh_client(registry) as c:
        assert push_blob(c, REPO, data, chunks=4).status_code == 201
    blob = str(Path(registry.root, REPO, "blobs", "sha256", digest.split(":")[1]))
    (worker,) = serving_processes(registry)
    before = bytes_read(worker)

    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        request = f"GET /v2/{REPO}/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request.encode())
        got = 0
        while got < 2 * 1024 * 1024:
            piece = sock.recv(256 * 1024)
            assert piece, "the server closed the connection early"
            got += len(piece)
        # Mid-body, the worker has the file open and is stalled on the full socket.
        assert blob in _open_files(worker)

    # The client is gone: the worker stops and closes the file without being sent more.
    wait_until(lambda: blob not in _open_files(worker), timeout=20)
    # It read what was sent and queued, plus one piece ahead; not the rest of the blob.
    assert bytes_read(worker) - before < len(data) // 3
    with fresh_client(registry) as c:
        r = c.get(f"/v2/{REPO}/blobs/{digest}")
        assert r.status_code == 200
        assert r.content == data
    assert "Traceback" not in registry.logs()


@pytest.mark.parametrize("range_header", [None, "bytes=1-"], ids=["whole", "ranged"])
def test_stalled_downloads_hold_little_memory(
    start_registry: StartRegistry, range_header: str | None
) -> None:
    """Clients that stop reading leave their unsent bytes queued in the worker: ~10 MiB per
    download streamed in 1 MiB pieces. A worker streams one large download itself; the
    others go to Granian's pathsend, which holds little, or (a range, which pathsend cannot
    send) are streamed in small pieces."""
    registry = start_registry(workers=1)
    data = os.urandom(48 * 1024 * 1024)
    digest = sha256(data)
    with fresh_client(registry) as c:
        assert push_blob(c, REPO, data, chunks=4).status_code == 201
    (worker,) = serving_processes(registry)
    before = rss_mib(worker)
    clients = 24
    path = f"/v2/{REPO}/blobs/{digest}"
    with stalled_downloads(registry.port, path, clients, worker, range_header):
        grown = rss_mib(worker) - before
        assert grown < clients * 4, f"{grown:.0f} MiB for {clients} stalled downloads"
    with fresh_client(registry) as c:  # and a fast client still gets the whole blob
        r = c.get(f"/v2/{REPO}/blobs/{digest}")
        assert r.status_code == 200
        assert r.content == data
