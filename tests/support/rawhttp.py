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


def send_stalled_h2(port: int, method: str, target: str, first: bytes) -> tuple[bytes, float]:
    """Over cleartext HTTP/2 (prior knowledge), send a request without Content-Length (a
    streamed body, as an HTTP/2 client sends a chunked one) and its `first` body bytes, then
    nothing: the body of the answer on its stream (its DATA frames; "" if the stream ended
    without one) and how long after the last byte it came. The answer's status is HPACK
    coded, hence its body: an error says its code there."""
    fields = {":method": method, ":scheme": "http", ":path": target, ":authority": "127.0.0.1"}
    # Each field a literal without indexing, its name and value plain (no Huffman coding).
    block = b"".join(
        b"\x00" + bytes([len(k)]) + k.encode() + bytes([len(v)]) + v.encode()
        for k, v in fields.items()
    )
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"")  # SETTINGS
    request = _h2_frame(1, 0x4, 1, block) + _h2_frame(0, 0, 1, first)  # HEADERS, DATA
    with socket.create_connection(("127.0.0.1", port), timeout=15.0) as sock:
        sock.sendall(preface + request)
        sent = time.monotonic()
        data, body = b"", b""
        while True:
            while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
                got = sock.recv(65536)
                if not got:
                    raise ConnectionError(f"connection closed before the stream ended: {data!r}")
                data += got
            size, kind, flags = int.from_bytes(data[:3], "big"), data[3], data[4]
            stream = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            payload, data = data[9 : 9 + size], data[9 + size :]
            if stream != 1:
                continue
            if kind == 0:  # DATA
                body += payload
            if kind == 3 or (kind in (0, 1) and flags & 0x1):  # RST_STREAM, END_STREAM
                return body, time.monotonic() - sent


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )
