"""A client whose connection drops in the middle of a large chunk, then resumes the session
where the server says it stands (as containers/image and docker do after a network error).

The bytes of a large chunk are hashed and written on threads of their own while more
arrive; when the client goes away, what was queued still lands before the session is
released, so the size the server reports is the file's final size and the resumed blob is
exact.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from tests.process.conftest import StartRegistry
from tests.process.helpers import OCTET, fresh_client, sha256, start_upload, with_digest
from tests.support.server import wait_until

REPO = "interrupted/upload"
MiB = 1024 * 1024


def _send_part_of_a_patch(port: int, location: str, data: bytes, sent: int) -> None:
    """PATCH announcing all of `data`, send only `sent` bytes of it, then drop the connection."""
    target = urlsplit(location)
    path = target.path + (f"?{target.query}" if target.query else "")
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.sendall(data[:sent])


def test_a_dropped_chunk_resumes_from_where_the_server_stands(
    start_registry: StartRegistry,
) -> None:
    registry = start_registry(workers=2)
    data = os.urandom(40 * MiB)
    with fresh_client(registry) as c:
        location = start_upload(c, REPO)
        _send_part_of_a_patch(registry.port, location, data, 17 * MiB + 5)

        # The server notices the disconnect on its own time; wait until the session's size
        # stops moving (each GET may land on either worker).
        seen: list[int] = []

        def settled() -> bool:
            r = c.get(location)
            assert r.status_code == 204, r.text
            seen.append(int(r.headers["Range"].split("-")[1]) + 1)
            return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

        wait_until(settled, timeout=30, interval=0.1)
        held = seen[-1]
        assert 0 < held <= 17 * MiB + 5

        rest = data[held:]
        r = c.patch(
            location,
            content=rest,
            headers={**OCTET, "Content-Range": f"{held}-{len(data) - 1}"},
        )
        assert r.status_code == 202, r.text
        r = c.put(with_digest(r.headers["Location"], sha256(data)))
        assert r.status_code == 201, r.text
        r = c.get(f"/v2/{REPO}/blobs/{sha256(data)}")
        assert r.status_code == 200
        assert r.content == data
    assert "Traceback" not in registry.logs()
