"""CORS, answered as zot answers it: a web page served from another origin (a registry UI
hosted apart, a dashboard) may call the API from a browser. zot does this by default, for
any origin; `http.allowOrigin` names the origins instead (comma-separated).

Starlette's `CORSMiddleware` does the work: it answers a browser's preflight (`OPTIONS` with
`Access-Control-Request-Method`) itself, before authentication (a preflight carries no
credentials), and adds the allow headers to the answers of requests that carry an `Origin`.
A request without `Origin` (every registry client) skips the layer (`Cors`): Starlette's
would still add `Vary: Origin` to its answer and cost a few microseconds on every manifest
read. The layer sits above the request context, which renders error answers (a page reads a
401 or a 404 too), so those answers pass through it; a preflight, answered here, gets a
request context of its own (a request id, an access-log line) around Starlette's answer.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.asgi import request_header
from ocireg.config import Config
from ocireg.server.context import RequestContextMiddleware

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# zot's list: credentials, a body's type, and the header its UI names itself by
HEADERS = ("Authorization", "Content-Type", "X-ZOT-API-CLIENT")
# What a page needs to read of the API's answers beyond the safelisted headers.
EXPOSED = (
    "Docker-Content-Digest",
    "Link",
    "Location",
    "Range",
    "Content-Range",
    "OCI-Subject",
    "OCI-Filters-Applied",
    "OCI-Chunk-Min-Length",
    "Docker-Upload-UUID",
    "WWW-Authenticate",
)


class Cors(CORSMiddleware):
    """Starlette's CORS layer for requests that carry an `Origin`; the others go straight on."""

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        super().__init__(app, **options)
        # Starlette answers a preflight without calling the app below: logged as a request.
        self._preflights = RequestContextMiddleware(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if request_header(scope, b"origin") is None:
            await self.app(scope, receive, send)
        elif (
            scope["method"] == "OPTIONS"
            and request_header(scope, b"access-control-request-method") is not None
        ):
            await self._preflights(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def cors(config: Config, authenticated: bool) -> Middleware:
    origins = [o.strip() for o in config.http.allow_origin.split(",") if o.strip()]
    if not origins or "*" in origins:
        origins = ["*"]  # any origin: then never with credentials (Starlette would echo any)
    return Middleware(
        Cors,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=HEADERS,
        # As zot: a browser may send its login along only to origins named one by one
        # (the CORS rules refuse credentials with a wildcard anyway).
        allow_credentials=authenticated and origins != ["*"],
        expose_headers=EXPOSED,
    )
