"""The outermost middleware: request id, access log, the API version header, and the one
place where errors become responses (spec JSON for RegistryError, 500 UNKNOWN otherwise)."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg import events
from ocireg.asgi import raw_headers, request_header
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import FORWARDED_KEY, IDENTITY_KEY
from ocireg.logs import audit_log, request_id
from ocireg.meta import MetaUnavailable
from ocireg.registry.faults import as_registry_error
from ocireg.server.traffic import Traffic
from ocireg.storage import StorageError
from ocireg.target import Kind, target_of

log = logging.getLogger("ocireg.access")
errlog = logging.getLogger("ocireg.errors")
_INCOMING_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
# app.state's renderer of an error as a web page (ui/pages.py), when the pages are on
PAGE_ERROR_KEY = "page_error"
PageError = Callable[[Scope, RegistryError], Response]
_AUDITED = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # as zot's audit log


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = os.getpid()
        # A random per-process prefix and a counter: unique like a uuid4, without a
        # getrandom() call and a UUID object per request (docs/performance.md, "Manifest
        # GET/HEAD: ~180 -> ~95 us").
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or self._new_id()
        token = request_id.set(rid)
        changes = scope.get("method") in _AUDITED
        # A request that may change something: the events it causes name it (and the audit
        # log, once answered).
        cause = events.origin.set(_origin(scope)) if changes else None
        started = time.perf_counter()
        traffic = Traffic()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append(_API_VERSION)
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            traffic.sent(message)
            await send(message)

        try:
            await self.app(scope, traffic.counting(receive), send_with_headers)
        except RegistryError as err:
            await self._send_error(scope, send_with_headers, traffic, err)
        except (StorageError, MetaUnavailable) as exc:
            errlog.warning("backend error", extra={"error": str(exc), "path": scope.get("path")})
            await self._send_error(scope, send_with_headers, traffic, as_registry_error(exc))
        except ClientDisconnect:
            answered = traffic.status
            if not answered:
                # Granian ends a body whose chunked framing is malformed as if the client
                # had gone, then answers a bare 500 itself when nothing was sent. A client
                # still there gets the envelope; one that left gets nothing either way, and
                # both are logged as a body that ended early (499), as the metrics count them.
                await self._send_error(
                    scope, send_with_headers, traffic, RegistryError(ErrorCode.BODY_INVALID)
                )
            traffic.status = answered or 499
        except Exception:
            errlog.exception("unhandled error", extra={"path": scope.get("path")})
            await self._send_error(
                scope, send_with_headers, traffic, RegistryError(ErrorCode.UNKNOWN)
            )
        finally:
            if log.isEnabledFor(logging.INFO):  # at warn, skip building the record at all
                self._access_log(scope, traffic, started)
            if changes:
                _audit(scope, traffic)
            request_id.reset(token)
            if cause is not None:
                events.origin.reset(cause)

    def _access_log(self, scope: Scope, traffic: Traffic, started: float) -> None:
        log.info(
            "request",
            extra={
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": traffic.status,
                "bytes_in": traffic.bytes_in,
                "bytes_out": traffic.bytes_out,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "client": (scope.get("client") or ("-",))[0],
                "pid": self.pid,
            },
        )

    @staticmethod
    async def _send_error(scope: Scope, send: Send, traffic: Traffic, err: RegistryError) -> None:
        if traffic.status:
            # Headers already went out: the only honest signal left is to break the stream.
            raise RuntimeError("error after the response started") from err
        page_error = _page_error(scope)
        if page_error is not None:
            # A web page (a member that stores the repository did not answer, say): the
            # pages' own error page, not the API's JSON.
            await page_error(scope, err)(scope, _no_body, send)
            return
        body = err.body()
        headers = raw_headers(err.headers)
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})


def _audit(scope: Scope, traffic: Traffic) -> None:
    """zot's audit log (`log.audit`): a change that succeeded, who made it and from where.
    A request a member forwarded is written by the member that received it from the client."""
    audit = audit_log()
    if audit is None or traffic.status not in (200, 201, 202) or scope.get(FORWARDED_KEY):
        return
    query = scope.get("query_string", b"").decode("latin-1")
    audit.info(
        "HTTP API Audit",
        extra={
            "component": "session",
            "clientIP": _address(scope),
            "subject": _user(scope) or "anonymous",
            "action": scope.get("method"),
            "object": scope.get("path", "") + (f"?{query}" if query else ""),
            "status": traffic.status,
        },
    )


def _address(scope: Scope) -> str:
    """The client's address and port, as Go writes a request's RemoteAddr."""
    host, port = scope.get("client") or ("-", 0)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _user(scope: Scope) -> str | None:
    """The authenticated user, once authentication has run (None: anonymous)."""
    return getattr(scope.get(IDENTITY_KEY), "user", None)


def _origin(scope: Scope) -> events.Origin:
    agent = request_header(scope, b"user-agent") or b""
    return events.Origin(
        functools.partial(_user, scope),
        functools.partial(_client_address, scope),
        str(scope.get("method")),
        agent.decode("latin-1"),
    )


def _client_address(scope: Scope) -> str:
    """The client's address; for a request another member forwarded (its proof checked),
    the client's as that member saw it (the last `X-Forwarded-For` entry, without a port)
    rather than the member's."""
    if scope.get(FORWARDED_KEY):
        forwarded = request_header(scope, b"x-forwarded-for") or b""
        client = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip()
        if client:
            return client
    return _address(scope)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _page_error(scope: Scope) -> PageError | None:
    if "app" not in scope or target_of(scope).kind is not Kind.PAGE:
        return None
    handler = getattr(scope["app"].state, PAGE_ERROR_KEY, None)
    return handler if callable(handler) else None


def _incoming_id(scope: Scope) -> str | None:
    value = request_header(scope, b"x-request-id")
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if _INCOMING_ID_RE.match(text) else None
