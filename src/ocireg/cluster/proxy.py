"""Stream one request to the owning member and its response back, in bounded chunks.

One pooled aiohttp session per worker process, created on first use inside the running loop;
blob GETs over plain HTTP take the leaner path of relay.py instead.
The owner's status, headers and body come back unchanged (minus hop-by-hop headers and the two
that the outer middleware adds itself). No total timeout: a large blob takes as long as it
takes; a connect timeout and an idle (between reads) timeout bound everything else.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send
from yarl import URL

from ocireg.cluster.proof import CLUSTER_HEADERS
from ocireg.cluster.relay import BlobRelay, NotRelayable, OwnerFailed
from ocireg.errors import ErrorCode, RegistryError
from ocireg.logs import request_id
from ocireg.target import Endpoint, target_of

log = logging.getLogger("ocireg.cluster")

CHUNK = 1024 * 1024  # aiohttp's read buffer per connection
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_IDLE_TIMEOUT = 300.0

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Credentials stay on the member that checked them: the identity travels signed instead.
# The request id is replaced by ours, so both members log the request under one id.
_DROP_REQUEST = (
    _HOP_BY_HOP
    | CLUSTER_HEADERS
    | {
        b"host",
        b"expect",
        b"x-forwarded-for",
        b"authorization",
        b"x-request-id",
    }
)
# RequestContextMiddleware adds these to every response it sends, ours included.
_DROP_RESPONSE = _HOP_BY_HOP | {b"docker-distribution-api-version", b"x-request-id"}
# The caller's headers only: aiohttp must not invent these on its way to the owner.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
# RFC 3986 pchar plus "/": what may stay unescaped in a path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass
class _BodyState:
    sent: bool = False  # a body byte left for the owner: the request can no longer be replayed
    client_gone: bool = False
    # The client's body failed us (it stalled past http.bodyIdleTimeout): the client's error
    # to answer, not the owner's.
    client_error: RegistryError | None = None

    def raise_client_failure(self) -> None:
        if self.client_error is not None:
            raise self.client_error
        if self.client_gone:
            raise ClientDisconnect()


async def _request_body(receive: Receive, state: _BodyState) -> AsyncGenerator[bytes, None]:
    while True:
        try:
            message = await receive()
        except RegistryError as err:
            state.client_error = err
            raise
        if message["type"] == "http.disconnect":
            state.client_gone = True
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        if chunk:
            state.sent = True
            yield chunk
        if not message.get("more_body", False):
            return


def _unavailable(member: str, exc: BaseException) -> RegistryError:
    reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    # A warning: on shared storage the member that tried may still answer (failover); when
    # it cannot, the cluster middleware logs the failed request as an error.
    log.warning("cluster member unreachable", extra={"member": member, "reason": reason})
    return RegistryError(
        ErrorCode.UNAVAILABLE,
        message="the cluster member that owns this repository is unreachable",
        detail={"member": member},
    )


class Forwarder:
    """Sends requests to other members; one per worker process (it lives in the middleware)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.scheme = "https" if ssl_context else "http"
        self._ssl: ssl.SSLContext | bool = ssl_context or False
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=idle_timeout
        )
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None
        # Blob downloads skip aiohttp (relay.py says why); over TLS they keep it.
        self._relay = BlobRelay(connect_timeout, idle_timeout) if ssl_context is None else None

    def _session(self, fresh: bool) -> aiohttp.ClientSession:
        # Sessions bind to the running loop, so they are made on first use, not at import.
        current = self._fresh if fresh else self._pooled
        if current is None or current.closed:
            current = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    # limit=0: a request never waits for a pool slot, so the connect timeout
                    # measures only the owner. force_close: the retry must not reuse a socket.
                    limit=0,
                    force_close=fresh,
                    ssl=self._ssl,
                    enable_cleanup_closed=False,
                ),
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
                read_bufsize=CHUNK,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            if fresh:
                self._fresh = current
            else:
                self._pooled = current
        return current

    async def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        member: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Send the request to `member` and its answer to the client; RegistryError
        UNAVAILABLE when the member cannot be reached or fails mid-answer."""
        url = self._url(scope, member)
        headers, has_body = _request_headers(scope, extra_headers)
        if not has_body and await self._relayed(scope, url, member, headers, send):
            return
        response = await self._send(scope["method"], url, member, headers, has_body, receive)
        async with response:
            await _relay_response(response, scope["method"], member, send)

    def _url(self, scope: Scope, member: str) -> URL:
        return URL.build(
            scheme=self.scheme,
            authority=member,
            # The server percent-decoded the path; quote it again so it arrives the same.
            path=quote(scope["path"], safe=_PATH_SAFE),
            query_string=scope.get("query_string", b"").decode("latin-1"),
            encoded=True,
        )

    async def _relayed(
        self, scope: Scope, url: URL, member: str, headers: CIMultiDict[str], send: Send
    ) -> bool:
        """A blob GET answered through the lean relay; False when it is not one, or the
        owner's answer is not of the kind the relay passes on (then aiohttp asks again)."""
        if (
            self._relay is None
            or scope["method"] != "GET"
            or target_of(scope).endpoint is not Endpoint.BLOB
            or url.host is None
            or url.port is None
        ):
            return False
        try:
            await self._relay.get(
                url.host, url.port, member, url.raw_path_qs, headers.items(), send, _DROP_RESPONSE
            )
            return True
        except NotRelayable as exc:
            log.info("answer not relayable, asking again", extra={"reason": str(exc)})
            return False
        except OwnerFailed as exc:
            raise _unavailable(member, exc) from None

    async def _send(
        self,
        method: str,
        url: URL,
        member: str,
        headers: CIMultiDict[str],
        has_body: bool,
        receive: Receive,
    ) -> aiohttp.ClientResponse:
        """The owner's response. A pooled connection the owner had closed is tried once more
        on a fresh one, if no body byte has left yet; the client's own failures (gone,
        stalled) are raised as the client's."""
        state = _BodyState()
        for attempt in (1, 2):
            body = _request_body(receive, state) if has_body else None
            response: aiohttp.ClientResponse | None = None
            try:
                response = await self._session(fresh=attempt == 2).request(
                    method, url, headers=headers, data=body, allow_redirects=False
                )
                return response
            except aiohttp.ClientConnectorError as exc:
                raise _unavailable(member, exc) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                state.raise_client_failure()
                if attempt == 2 or state.sent:
                    raise _unavailable(member, exc) from None
                log.info("retrying on a fresh connection", extra={"member": member})
            except (aiohttp.ClientError, TimeoutError) as exc:
                state.raise_client_failure()
                raise _unavailable(member, exc) from None
            finally:
                if body is not None and response is None:
                    await body.aclose()
        raise AssertionError("unreachable: the second attempt returns or raises")


def _request_headers(
    scope: Scope, extra: list[tuple[bytes, bytes]]
) -> tuple[CIMultiDict[str], bool]:
    headers: CIMultiDict[str] = CIMultiDict()
    forwarded_for = ""
    has_proto = False
    chunked = False
    length: str | None = None
    for key, value in scope["headers"]:
        name = key.lower()
        if name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        if name == b"x-forwarded-for":
            forwarded_for = value.decode("latin-1")
        if name in _DROP_REQUEST:
            continue
        if name == b"content-length":
            length = value.decode("latin-1").strip()
        has_proto = has_proto or name == b"x-forwarded-proto"
        headers.add(key.decode("latin-1"), value.decode("latin-1"))
    client = (scope.get("client") or ("",))[0]
    if client:
        forwarded_for = f"{forwarded_for}, {client}" if forwarded_for else client
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    if not has_proto:
        headers["X-Forwarded-Proto"] = scope.get("scheme", "http")
    headers["X-Request-Id"] = request_id.get()
    for key, value in extra:
        headers[key.decode("latin-1")] = value.decode("latin-1")
    # An explicit Content-Length (0 included) is passed on as it is, so it is never chunked.
    has_body = chunked or (length is not None and length != "0")
    return headers, has_body


async def _relay_response(
    response: aiohttp.ClientResponse, method: str, member: str, send: Send
) -> None:
    headers = [
        (key.lower(), value)
        for key, value in response.raw_headers
        if key.lower() not in _DROP_RESPONSE
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if method == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return
    try:
        # Whatever has arrived, as it is: no re-joining into fixed sizes. The reader stops
        # reading from the owner once about 2 x read_bufsize (CHUNK) is buffered, so memory
        # stays bounded when the client is slower than the owner.
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The status is out already: break the client's connection rather than let a short
        # body pass for a complete one.
        raise _unavailable(member, exc) from None
    await send({"type": "http.response.body", "body": b""})
