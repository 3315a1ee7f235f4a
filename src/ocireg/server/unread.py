"""Request bodies that a response does not wait for.

Some answers come before the request's body has been read, or without reading it at all: an
error (401, 404, 413, ...), a GET that carries a body (zli sends its GraphQL query in the
URL and again as the body), an upload refused up front. Granian's HTTP/1 server keeps such
a connection open only if the rest of the body is already there when the response ends;
otherwise it closes the connection after the response without saying so. A client that
sends its next request on that connection then meets "server disconnected without a
response" (seen in the tests, mid-push, under load).

So, when a response starts and the body is not all read: a short rest (up to DRAIN_LIMIT
bytes, declared by Content-Length) is read and kept first, within DRAIN_WAIT seconds, for
the application to read later if it wants; anything else gets `Connection: close` on the
response, so the client opens a new connection for its next request. Go's server does
much the same (it reads up to 256 KiB of an unread body, else closes the connection).

Not while the application is itself waiting for a piece of the body (the cluster proxy
streams a body to another member while relaying its answer): it is reading to the end.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg.api.common import decimal

DRAIN_LIMIT = 256 * 1024  # bytes of unread body read before the response, at most
DRAIN_WAIT = 1.0  # seconds the response waits for them, at most


class UnreadBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        # Nothing this layer could leave unread (most GETs and HEADs; an HTTP/2 body without
        # a Content-Length, whose `settle` would find nothing to do): no wrapping.
        if not chunked and not declared:
            await self.app(scope, receive, send)
            return
        body = _Body(receive, declared)

        # HTTP/2 resets the stream, not the connection, after a response to a body left
        # unread: a short rest is read there too, but there is no `Connection` to close.
        http1 = scope.get("http_version") != "2"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                closing = any(name.lower() == b"connection" for name, _ in headers)
                # (a 408 for a stalled body says `Connection: close` already)
                if not closing and not await body.settle() and http1:
                    headers = [*headers, (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, body.receive, sending)


def body_expected(scope: Scope) -> bool:
    """Whether a request body may be coming: a Content-Length above zero, or chunked; in
    HTTP/2 also one without a Content-Length, which a streamed body (a client's chunked
    PATCH) need not declare there."""
    declared, chunked = _framing(scope)
    if declared is None and scope.get("http_version") == "2":
        return True
    return chunked or bool(declared)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None when absent or invalid) and whether it is chunked."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"content-length":
            declared = decimal(value.decode("latin-1"))
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


class _Body:
    __slots__ = ("_lock", "_receive", "declared", "done", "kept", "received")

    def __init__(self, receive: Receive, declared: int | None) -> None:
        """A body that is coming: `declared` long (Content-Length), or None when chunked."""
        self._receive = receive
        self.declared = declared
        self.done = False
        self.received = 0
        self.kept: list[Message] = []  # read ahead by `settle`, for the application
        # Held by whoever waits for the client: the application (`receive`) or `settle`.
        # The application may read while its response starts (the cluster proxy does).
        self._lock = asyncio.Lock()

    async def receive(self) -> Message:
        async with self._lock:
            if self.kept:
                return self.kept.pop(0)
            return self._note(await self._receive())

    def _note(self, message: Message) -> Message:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        else:  # http.disconnect: nothing more will come
            self.done = True
        return message

    async def settle(self) -> bool:
        """Before a response starts: True when the connection can serve another request
        after it (the body is read, or being read, or its short rest is now read)."""
        if self.done or self._lock.locked():  # read, or being read by the application
            return True
        if self.declared is None or self.declared - self.received > DRAIN_LIMIT:
            return False
        try:
            async with asyncio.timeout(DRAIN_WAIT), self._lock:
                while not self.done:
                    self.kept.append(self._note(await self._receive()))
        except TimeoutError:
            return False
        return True
