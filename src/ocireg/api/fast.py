"""Fast routes: GET/HEAD of a manifest and HEAD of a blob, answered with raw ASGI messages.

These are the requests a pull makes most (every tag, every layer is checked before a byte
moves). For them, Starlette's exception middleware, router, `Request` and `Response` cost
about as much as the handler. This layer is the innermost middleware: request ids, metrics,
authentication and cluster routing still run on every request above it. It matches a path
with the route's own regex, calls the same `*_parts` function as the Starlette handler
(so there is one implementation, and errors are the same `RegistryError`s, rendered by
`RequestContextMiddleware`), and hands everything else to Starlette unchanged.

Why a match here is the match Starlette's router would make: the routes listed before
`get_manifest`/`get_blob` in `ocireg.api.routes` end in `/blobs/uploads/{session}`, `/v2/`
or `/v2/_catalog`, and `{session}`, `{reference}` and `{digest}` hold no `/`, so no path
ending in `/manifests/<ref>` or `/blobs/<digest>` can match any of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from re import Pattern

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.api import blobs, manifests
from ocireg.api.responses import RawParts
from ocireg.registry import ImageStore

_Serve = Callable[[ImageStore, dict[str, str], bool], Awaitable[RawParts]]


def _manifest(store: ImageStore, params: dict[str, str], head: bool) -> Awaitable[RawParts]:
    return manifests.get_manifest_parts(store, params["name"], params["reference"], head)


def _blob_head(store: ImageStore, params: dict[str, str], head: bool) -> Awaitable[RawParts]:
    return blobs.head_blob_parts(store, params["name"], params["digest"])


class _FastRoute:
    def __init__(self, route: Route, methods: frozenset[str], serve: _Serve) -> None:
        self.endpoint = route.endpoint
        self.regex: Pattern[str] = route.path_regex
        self.methods = methods
        self.serve = serve


class FastRoutes:
    """Innermost middleware: serves the routes above directly, falls through otherwise."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        table: dict[object, tuple[str, frozenset[str], _Serve]] = {
            manifests.get_manifest: ("/manifests/", frozenset({"GET", "HEAD"}), _manifest),
            blobs.get_blob: ("/blobs/", frozenset({"HEAD"}), _blob_head),
        }
        # (a substring every matching path contains: a cheap first test, the route)
        self.routes: list[tuple[str, _FastRoute]] = []
        for route in routes:
            if isinstance(route, Route) and route.endpoint in table:
                marker, methods, serve = table.pop(route.endpoint)
                self.routes.append((marker, _FastRoute(route, methods, serve)))
        if table:
            raise ValueError(f"fast routes without a route in the table: {list(table)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method = scope["method"]
            path = scope["path"]
            for marker, fast in self.routes:
                if method not in fast.methods or marker not in path:
                    continue
                match = fast.regex.match(path)
                if match is None:
                    continue
                params = match.groupdict()
                # What the router would leave in the scope (metrics labels by endpoint).
                scope["endpoint"] = fast.endpoint
                scope["path_params"] = params
                status, headers, body = await fast.serve(
                    scope["app"].state.store, params, method == "HEAD"
                )
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
