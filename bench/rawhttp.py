"""A minimal blocking HTTP/1.1 client on a raw socket, for the blob workloads.

Bodies go out with `sendall` of large memoryviews and come back with `recv_into` a reused
1 MiB buffer, so the client costs a few percent of a core at GB/s (the harness reports its
CPU use next to each figure to show that it is not the bottleneck).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RECV = 1 << 20


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    length: int = 0  # bytes of body received (also when discarded)


class Connection:
    """One keep-alive connection to `host:port`."""

    def __init__(self, host: str, port: int, timeout: float = 300.0) -> None:
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray(RECV)
        self._pending = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | Iterable[memoryview | bytes] = b"",
        length: int | None = None,
        keep_body: bool = True,
    ) -> Reply:
        """Send one request; `body` is bytes or an iterable of pieces totalling `length`."""
        if isinstance(body, bytes | bytearray):
            length = len(body)
            pieces: Iterable[memoryview | bytes] = (body,) if body else ()
        else:
            pieces = body
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for key, value in (headers or {}).items():
            head.append(f"{key}: {value}")
        if method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {length or 0}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for piece in pieces:
            self.sock.sendall(piece)
        return self._read_reply(method, keep_body)

    def _read_reply(self, method: str, keep_body: bool) -> Reply:
        data = self._pending
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        reply = Reply(int(lines[0].split(" ", 2)[1]))
        for line in lines[1:]:
            key, _, value = line.partition(":")
            reply.headers[key.strip().lower()] = value.strip()
        if method == "HEAD" or reply.status in (204, 304):
            self._pending = rest
            return reply
        if "content-length" not in reply.headers:
            raise ConnectionError(f"response without Content-Length: {lines[0]}")
        remaining = int(reply.headers["content-length"])
        taken = rest[:remaining]
        self._pending = rest[remaining:]
        parts = [taken] if keep_body else []
        reply.length = len(taken)
        remaining -= len(taken)
        view = memoryview(self._buf)
        while remaining > 0:
            n = self.sock.recv_into(view, min(RECV, remaining))
            if n == 0:
                raise ConnectionError("connection closed in the response body")
            if keep_body:
                parts.append(bytes(view[:n]))
            remaining -= n
            reply.length += n
        reply.body = b"".join(parts)
        return reply


def location_target(location: str) -> str:
    """The request target (path and query) of a Location header, absolute or not."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(target: str, key: str, value: str) -> str:
    return f"{target}{'&' if '?' in target else '?'}{key}={value}"
