"""A lean path for the biggest proxied responses: blob GETs over plain HTTP.

Through aiohttp every byte of a proxied blob is copied four times in Python: uvloop's read
into a fresh `bytes`, the HTTP parser's body slice, `StreamReader.readany`'s join, and
Granian's send. Here the owner's response is read with `recv_into` into one reused buffer
per connection and handed to Granian with one copy, which halves the proxy's CPU per GiB
(docs/performance.md, "Cluster hop"). The scope is deliberately small: GET only (no request
body), a response framed by `Content-Length`; anything else (a chunked or close-delimited
response) is reported before the client has seen a byte, and the caller sends the request
again through aiohttp. Connections are pooled per member and used only while Granian keeps
them (it closes idle keep-alive connections after 30 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import cast

from starlette.types import Send

BUFFER = 1024 * 1024  # per connection: the most a pull holds in Python besides Granian's copy
HEAD_LIMIT = 64 * 1024
POOL_IDLE = 10.0  # seconds an idle connection is reused; Granian drops them at 30
POOL_SIZE = 8  # idle connections kept per member (each holds one BUFFER)


class NotRelayable(Exception):
    """The response is not framed by Content-Length; nothing was sent to the client."""


class OwnerFailed(Exception):
    """The owner could not be reached, closed the connection, or went silent."""


class OwnerClosed(OwnerFailed):
    """The connection ended before the response was complete."""


class _Protocol(asyncio.BufferedProtocol):
    """Reads into one reused buffer; reading pauses while it is full (bounded memory)."""

    def __init__(self) -> None:
        self.buf = bytearray(BUFFER)
        self.view = memoryview(self.buf)
        self.filled = 0
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        if self.filled == len(self.buf) and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def usable(self) -> bool:
        return (
            not self.eof
            and self.filled == 0
            and self.transport is not None
            and not self.transport.is_closing()
        )

    async def take(self, limit: int, idle: float) -> bytes:
        """Up to `limit` bytes that have arrived, waiting at most `idle` s for some;
        b"" once the owner has closed."""
        while self.filled == 0:
            if self.eof:
                if self.error is not None:
                    raise OwnerFailed(f"{type(self.error).__name__}: {self.error}")
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(idle):
                    await self._waiter
            except TimeoutError:
                raise OwnerFailed(f"no data for {idle:g} s") from None
            finally:
                self._waiter = None
        n = min(self.filled, limit)
        data = bytes(self.view[:n])
        rest = self.filled - n
        if rest:
            self.buf[:rest] = self.view[n : self.filled]
        self.filled = rest
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data


def _parse_head(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], int | None, bool]:
    """Status, headers (names lower-cased), Content-Length, and whether the owner keeps the
    connection open; NotRelayable unless the body is framed by Content-Length."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise NotRelayable(f"unexpected status line {lines[0][:80]!r}")
    status = int(parts[1])
    keep = parts[0] == b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise NotRelayable("malformed header line")
        name, value = name.strip().lower(), value.strip()
        if name == b"transfer-encoding":
            raise NotRelayable("chunked response")
        if name == b"content-length":
            if length is not None or not value.isdigit():
                raise NotRelayable("bad Content-Length")
            length = int(value)
        if name == b"connection" and b"close" in value.lower():
            keep = False
        headers.append((name, value))
    if status < 200:
        raise NotRelayable("interim response")  # aiohttp knows what to do with those
    if length is None and status not in (204, 304):
        raise NotRelayable("response without Content-Length")
    return status, headers, length, keep


class BlobRelay:
    """Pooled plain-HTTP connections to the other members, for blob GETs."""

    def __init__(self, connect_timeout: float, idle_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, int], list[tuple[_Protocol, float]]] = {}

    async def _connect(self, host: str, port: int) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, proto = await loop.create_connection(_Protocol, host, port)
        except (OSError, TimeoutError) as exc:
            raise OwnerFailed(f"cannot connect: {type(exc).__name__}: {exc}") from None
        return proto

    def _pooled(self, key: tuple[str, int]) -> _Protocol | None:
        idle = self._idle.get(key, [])
        now = time.monotonic()
        while idle:
            proto, since = idle.pop()
            if proto.usable and now - since < POOL_IDLE:
                return proto
            if proto.transport is not None:
                proto.transport.close()
        return None

    def _release(self, key: tuple[str, int], proto: _Protocol) -> None:
        idle = self._idle.setdefault(key, [])
        if proto.usable and len(idle) < POOL_SIZE:
            idle.append((proto, time.monotonic()))
        elif proto.transport is not None:
            proto.transport.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for proto, _ in idle:
                if proto.transport is not None:
                    proto.transport.close()
        self._idle.clear()

    async def get(
        self,
        host: str,
        port: int,
        authority: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        send: Send,
        drop: frozenset[bytes],
    ) -> None:
        """Send `GET target` to host:port and stream the answer to `send`.

        Raises NotRelayable (nothing sent yet: use another path) or OwnerFailed (if the
        response had started, the client's connection must be broken). Whatever `send`
        raises (the client went away) passes through.
        """
        key = (host, port)
        lines = [f"GET {target} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        proto = self._pooled(key)
        reused = proto is not None
        if proto is None:
            proto = await self._connect(host, port)
        try:
            try:
                raw, rest = await self._head(proto, request)
            except OwnerClosed:
                if not reused:
                    raise
                # A pooled connection that the owner closed meanwhile: a GET can go again.
                if proto.transport is not None:
                    proto.transport.close()
                proto = await self._connect(host, port)
                raw, rest = await self._head(proto, request)
            status, out, length, keep = _parse_head(raw)
            await self._body(proto, status, out, length or 0, rest, send, drop)
        except BaseException:
            if proto.transport is not None:
                proto.transport.close()
            raise
        if keep:
            self._release(key, proto)
        elif proto.transport is not None:
            proto.transport.close()

    async def _head(self, proto: _Protocol, request: bytes) -> tuple[bytes, bytes]:
        assert proto.transport is not None
        proto.transport.write(request)
        raw = b""
        while (end := raw.find(b"\r\n\r\n")) < 0:
            if len(raw) > HEAD_LIMIT:
                raise NotRelayable("response head too large")
            piece = await proto.take(BUFFER, self.idle_timeout)
            if not piece:
                raise OwnerClosed("the owner closed the connection before answering")
            raw += piece
        return raw[:end], raw[end + 4 :]

    async def _body(
        self,
        proto: _Protocol,
        status: int,
        headers: list[tuple[bytes, bytes]],
        length: int,
        rest: bytes,
        send: Send,
        drop: frozenset[bytes],
    ) -> None:
        if len(rest) > length:
            raise NotRelayable("more bytes than Content-Length")
        kept = [(name, value) for name, value in headers if name not in drop]
        await send({"type": "http.response.start", "status": status, "headers": kept})
        remaining = length - len(rest)
        if rest:
            await send({"type": "http.response.body", "body": rest, "more_body": True})
        while remaining > 0:
            chunk = await proto.take(remaining, self.idle_timeout)
            if not chunk:
                raise OwnerClosed("the owner closed the connection mid-body")
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
