"""The innermost middleware: hands each classified request to its handler.

It sits below request ids, metrics, authentication and cluster routing, so all of them run
first. The raw routes send `RawParts` directly; the others get a Starlette `Request` and
send their `Response`. Requests outside the API (`/metrics`, unknown paths) go on to
Starlette's router.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.api.routes import RAW_ROUTES, ROUTES, Handler, RawHandler
from ocireg.errors import ErrorCode, RegistryError
from ocireg.target import Endpoint, target_of


class Dispatch:
    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[tuple[Endpoint, str], Handler] = ROUTES,
        raw_routes: Mapping[tuple[Endpoint, str], RawHandler] = RAW_ROUTES,
        extra_routes: Mapping[tuple[Endpoint, str], Handler] | None = None,
    ) -> None:
        """`extra_routes`: endpoints the server layer answers itself (cluster status)."""
        self.app = app
        self.routes = {**routes, **(extra_routes or {})}
        self.raw_routes = dict(raw_routes)
        # A GET handler answers HEAD too, as Starlette's routes do.
        for (endpoint, method), handler in list(self.routes.items()):
            if method == "GET":
                self.routes.setdefault((endpoint, "HEAD"), handler)
        methods: dict[Endpoint, set[str]] = defaultdict(set)
        for endpoint, method in [*self.routes, *self.raw_routes]:
            methods[endpoint].add(method)
        self.allowed = {endpoint: ", ".join(sorted(m)) for endpoint, m in methods.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        aim = target_of(scope)
        if aim.endpoint in (Endpoint.OTHER, Endpoint.PAGE):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        key = (aim.endpoint, method)
        raw = self.raw_routes.get(key)
        if raw is not None:
            status, headers, body = await raw(scope["app"].state.store, aim, method == "HEAD")
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        handler = self.routes.get(key)
        if handler is None:
            if aim.endpoint is Endpoint.UNKNOWN_V2 or aim.endpoint not in self.allowed:
                # not routed at all (an extension that is off): as if it did not exist
                raise RegistryError(ErrorCode.NOT_FOUND)
            raise RegistryError(
                ErrorCode.METHOD_NOT_ALLOWED,
                detail={"method": method[:20]},
                headers={"allow": self.allowed[aim.endpoint]},
            )
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)
