"""An HTTP server a test writes itself (a token server, an OpenID issuer), on a free
loopback port, served by a thread of the test process while a `with` lasts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test's output clean, with a JSON answer at hand."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, body: Any, status: int = 200) -> None:
        self.send_raw(json.dumps(body).encode(), status)

    def send_raw(self, data: bytes, status: int = 200) -> None:
        """`data` as a JSON answer, whatever it holds."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ThreadedServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # the close does not wait for a handler a test keeps waiting (an upstream that hangs)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
