"""The on-demand hook: an ASGI middleware between authorization and the handlers.

Below cluster forwarding, so in a cluster with storage per member only the repository's
owner fetches; below authorization, so a client that may not read a repository cannot make
the registry fetch it. It looks only at manifest and blob GET/HEAD requests; the sync
service decides whether the repository maps to an upstream and whether anything is missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.api.responses import blob_headers, manifest_headers
from ocireg.asgi import request_header
from ocireg.config import Config
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.sync.content import Mapping
from ocireg.sync.settings import sync_settings
from ocireg.target import Endpoint, target_of

if TYPE_CHECKING:  # the service and its upstream client (aiohttp): only where sync is on
    from ocireg.sync.service import SyncService
    from ocireg.sync.upstream import Fetched

STATE_KEY = "sync"  # app.state.sync: the worker's SyncService, built in the lifespan
_READS = frozenset({"GET", "HEAD"})


class SyncOnDemand:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _READS:
            aim = target_of(scope)
            service: SyncService | None = getattr(scope["app"].state, STATE_KEY, None)
            if service is not None and aim.repository is not None and aim.error is None:
                head = scope["method"] == "HEAD"
                if aim.endpoint is Endpoint.MANIFEST and aim.reference is not None:
                    fetched = await service.on_demand_manifest(aim.repository, aim.reference)
                    if fetched is not None:
                        await _manifest(send, fetched, head)
                        return
                elif aim.endpoint is Endpoint.BLOB and aim.digest is not None:
                    # A range is served from the store once the blob is there.
                    follow = not head and request_header(scope, b"range") is None
                    streamed = await service.on_demand_blob(aim.repository, aim.digest, follow)
                    if streamed is not None:
                        await _blob(send, aim.digest, *streamed)
                        return
        await self.app(scope, receive, send)


async def _manifest(send: Send, fetched: Fetched, head: bool) -> None:
    """The answer of end-3 for a manifest fetched and verified, not stored yet."""
    headers = manifest_headers(fetched.digest, len(fetched.body), fetched.media_type)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else fetched.body})


async def _blob(send: Send, digest: Digest, size: int, pieces: AsyncGenerator[bytes, None]) -> None:
    """The answer of end-2 for a blob being copied: its bytes as they arrive. A copy that
    fails after the first byte cuts the response short (the status is sent already)."""
    from ocireg.sync.upstream import UpstreamError  # loaded already: a copy is under way

    headers = blob_headers(digest, size)
    async with contextlib.aclosing(pieces):
        # The status waits for the first byte: a copy that fails before it gets an error.
        try:
            first = await anext(pieces, b"")
        except UpstreamError as exc:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN,
                "could not be synced from the upstream registry",
                {"digest": str(digest), "upstreams": [str(exc)]},
            ) from None
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def sync_on_demand(config: Config) -> Middleware | None:
    """The middleware when some registry entry is `onDemand`; None otherwise."""
    return Middleware(SyncOnDemand) if sync_settings(config).on_demand else None


def mirrored(config: Config) -> Callable[[str], bool] | None:
    """Which repositories on-demand sync may fetch into: in a cluster their reads go to the
    owner even on shared storage, so that one member fetches each image once."""
    entries = [Mapping(r.content) for r in sync_settings(config).on_demand]
    if not entries:
        return None
    return lambda repo: any(m.remote_name(repo) is not None for m in entries)
