"""A plain HTTP reverse proxy on a loopback port that notes the headers of each request
before passing it on unchanged (Host included, so S3 signatures still match): it shows
what a real client sends where a redirect takes it. It can also answer the next requests
whose path contains `fail_on` with a 503 (`failing` of them), as a flaky upstream does, or
send half of the next answer whose path contains `stall_on` and hold the rest until
`released` is set (a transfer caught midway)."""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class RecordingProxy:
    upstream: str  # http://host:port
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    failing: int = 0  # how many of the next requests matching `fail_on` get a 503
    fail_on: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    stall_on: str = ""
    released: threading.Event = field(default_factory=threading.Event)

    def fail_next(self, count: int, fail_on: str) -> None:
        with self.lock:
            self.failing, self.fail_on = count, fail_on

    def stall_next(self, stall_on: str) -> None:
        with self.lock:
            self.stall_on = stall_on
            self.released.clear()

    def _stalls(self, path: str) -> bool:
        with self.lock:
            if self.stall_on and self.stall_on in path:
                self.stall_on = ""  # once
                return True
            return False

    def _fails(self, path: str) -> bool:
        with self.lock:
            if self.failing > 0 and self.fail_on in path:
                self.failing -= 1
                return True
            return False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def _handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._forward()

        def do_HEAD(self) -> None:
            self._forward()

        def _forward(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if proxy._fails(self.path):
                proxy.seen.append(Seen(self.command, self.path, headers, 503))
                body = b'{"errors":[{"code":"UNAVAILABLE","message":"failing on purpose"}]}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in headers.items():
                    conn.putheader(key, value)
                conn.endheaders()
                response = conn.getresponse()
                proxy.seen.append(Seen(self.command, self.path, headers, response.status))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD" and proxy._stalls(self.path):
                    body = response.read()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    proxy.released.wait(timeout=60)
                    self.wfile.write(body[len(body) // 2 :])
                elif self.command != "HEAD":
                    while piece := response.read(1 << 20):
                        self.wfile.write(piece)
            finally:
                conn.close()

    return Handler


@contextlib.contextmanager
def recording_proxy(upstream: str) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.released.set()  # a stalled answer ends, so that the server can shut down
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
