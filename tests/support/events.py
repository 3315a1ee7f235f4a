"""A sink for `extensions.events` that keeps what it is sent: a real HTTP server on
loopback, in a thread, each POST read back into a CloudEvent with the CloudEvents SDK (so an
event that does not follow the HTTP binding fails the test), and one pushing sequence for a
test against ocireg and one comparing it with zot."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event
from cloudevents.core.formats.json import JSONFormat

from tests.support.oci import push_blob, push_manifest, small_image
from tests.support.server import wait_until


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    data: dict[str, Any]
    type: str
    id: str
    source: str
    time: str
    channel: str | None


class _Kept:
    """What a sink kept, read from the test's thread."""

    events: list[Received]
    _lock: threading.Lock

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.events)

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """At least `count` events (bounded wait)."""
        got: list[Received] = wait_until(
            lambda: len(kept) >= count and kept if (kept := self.received()) else None,
            timeout=timeout,
        )
        return got


class EventSink(_Kept):
    """Takes POSTs on 127.0.0.1 (`url`); answers `status` (200)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.events: list[Received] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                event = from_binary_event(HTTPMessage(headers, body))
                received = Received(
                    self.path,
                    headers,
                    json.loads(body),
                    event.get_type(),
                    event.get_id(),
                    event.get_source(),
                    headers["ce-time"],
                    event.get_attributes().get("channel"),
                )
                with sink._lock:
                    sink.events.append(received)
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EventSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class NatsListener(_Kept):
    """Subscribes to `subject` on a NATS server (nats-py, an event loop in a thread of its
    own) and keeps each message read back as a CloudEvent in structured mode."""

    def __init__(self, url: str, subject: str) -> None:
        self.url, self.subject = url, subject
        self.events: list[Received] = []
        self.subjects: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._client: Any = None

    def __enter__(self) -> NatsListener:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._subscribe(), self._loop).result(timeout=30)
        return self

    async def _subscribe(self) -> None:
        import nats

        self._client = await nats.connect(self.url)
        await self._client.subscribe(self.subject, cb=self._take)
        await self._client.flush()

    async def _take(self, msg: Any) -> None:
        event = JSONFormat().read(None, msg.data)
        received = Received(
            msg.subject,
            dict(msg.headers or {}),
            json.loads(msg.data)["data"],
            event.get_type(),
            event.get_id(),
            event.get_source(),
            json.loads(msg.data)["time"],
            event.get_attributes().get("channel"),
        )
        with self._lock:
            self.events.append(received)

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


def push_sequence(client: httpx.Client, repo: str) -> list[int]:
    """The pushes and deletes whose events the tests compare: a first upload into a new
    repository, a tag, a second tag, the same tag again (no change), a manifest by digest, a
    tag deleted, a manifest deleted by digest. The answers' statuses."""
    first, first_digest, blobs = small_image("first")
    second, second_digest, more = small_image("second")
    for blob in blobs + more:
        push_blob(client, repo, blob)
    return [
        push_manifest(client, repo, "v1", first).status_code,
        push_manifest(client, repo, "v2", first).status_code,
        push_manifest(client, repo, "v2", first).status_code,
        push_manifest(client, repo, second_digest, second).status_code,
        client.delete(f"/v2/{repo}/manifests/v2").status_code,
        client.delete(f"/v2/{repo}/manifests/{first_digest}").status_code,
    ]


def summary(events: list[Received]) -> list[tuple[str, dict[str, Any]]]:
    """Type and data, without what differs from run to run (the client's port)."""
    out = []
    for event in events:
        data = dict(event.data)
        if "request" in data:
            data["request"] = {**data["request"], "addr": data["request"]["addr"].split(":")[0]}
        out.append((event.type, data))
    return out


def by_type(events: list[Received]) -> Iterator[str]:
    return (event.type for event in events)
