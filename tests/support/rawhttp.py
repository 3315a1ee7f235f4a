"""HTTP/1.1 over a plain socket, for clients no library lets us be: one that stops sending its
body halfway, trickles it, or frames it differently from what its headers say."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SocketResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def error_code(self) -> str:
        doc: dict[str, Any] = json.loads(self.body)
        return str(doc["errors"][0]["code"])


def start_request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 15.0,
) -> socket.socket:
    """Connect, send the request line, `headers` and the first `body` bytes; the caller
    decides what else to send (the rest, nothing, or a byte now and then)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def chunk(data: bytes) -> bytes:
    """One piece of a chunked-transfer body (b"" is the last one)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def read_response(sock: socket.socket) -> SocketResponse:
    """The response on `sock` (a body framed by Content-Length); the socket's own timeout
    bounds every wait."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        got = sock.recv(65536)
        if not got:
            break
        rest += got
    return SocketResponse(int(status_line.split()[1]), headers, rest[:length])


def send_stalled(
    port: int, method: str, target: str, first: bytes, total: int, chunked: bool = False
) -> tuple[SocketResponse, float]:
    """Send the head and `first` body bytes of a `total`-byte body (or, `chunked`, the first
    piece of a chunked one), then nothing: the answer and how long after the last byte it
    came."""
    headers = {"Content-Type": "application/octet-stream"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        first = chunk(first)
    else:
        headers["Content-Length"] = str(total)
    with start_request(port, method, target, headers, first) as sock:
        sent = time.monotonic()
        response = read_response(sock)
        return response, time.monotonic() - sent


def assert_idle_timeout(response: SocketResponse, waited: float, idle: float) -> None:
    """408 REQUEST_TIMEOUT in the spec's envelope, about `idle` seconds after the last byte."""
    assert response.status == 408, (response.status, response.body)
    assert response.error_code() == "REQUEST_TIMEOUT"
    assert response.headers["content-type"] == "application/json"
    assert idle * 0.9 <= waited < idle + 10, waited
