"""The on-demand hook: an ASGI middleware between authorization and the handlers.

Below cluster forwarding, so in a cluster with storage per member only the repository's
owner fetches; below authorization, so a client that may not read a repository cannot make
the registry fetch it. It looks only at manifest and blob GET/HEAD requests; the sync
service decides whether the repository maps to an upstream and whether anything is missing.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.config import Config
from ocireg.sync.service import SyncService
from ocireg.sync.settings import sync_settings
from ocireg.target import Endpoint, target_of

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
                if aim.endpoint is Endpoint.MANIFEST and aim.reference is not None:
                    await service.on_demand_manifest(aim.repository, aim.reference)
                elif aim.endpoint is Endpoint.BLOB and aim.digest is not None:
                    await service.on_demand_blob(aim.repository, aim.digest)
        await self.app(scope, receive, send)


def sync_on_demand(config: Config) -> Middleware | None:
    """The middleware when some registry entry is `onDemand`; None otherwise."""
    return Middleware(SyncOnDemand) if sync_settings(config).on_demand else None
