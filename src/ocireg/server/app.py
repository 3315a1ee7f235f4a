"""`create_app(config)`: the Starlette app with its services and its middleware stack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ocireg.api.apikeys import api_key_routes
from ocireg.api.common import BodyBudget
from ocireg.api.dispatch import Dispatch
from ocireg.api.mgmt import mgmt_routes
from ocireg.api.responses import StreamSlots
from ocireg.api.token import token_routes
from ocireg.auth.core import AuthServices, build_auth
from ocireg.auth.middleware import authenticate, authorize
from ocireg.cluster.gather import ClusterSearch
from ocireg.cluster.membership import membership_from_config
from ocireg.cluster.middleware import cluster_forward, cluster_inbound
from ocireg.cluster.peers import Peers, peers_from_config
from ocireg.config import Config, build_config, load_config
from ocireg.errors import ErrorCode, RegistryError
from ocireg.logs import setup_logging
from ocireg.registry import ImageStore
from ocireg.registry.manifests import MAX_MANIFEST_BYTES
from ocireg.registry.pulls import PullLog
from ocireg.server import metrics
from ocireg.server.bodies import BodyIdleTimeout
from ocireg.server.context import PAGE_ERROR_KEY, RequestContextMiddleware
from ocireg.server.cors import cors
from ocireg.server.maintenance import BackgroundJob, Maintenance, owner_filter
from ocireg.server.ratelimit import rate_limit
from ocireg.server.reload import CONFIG_DATA_ENV, LOCAL_MEMBER_ENV, MEMBERS_FILE_ENV, MembersFile
from ocireg.server.services import build_store, replay_dir
from ocireg.server.status import cluster_status
from ocireg.server.unread import UnreadBody
from ocireg.sync.ondemand import STATE_KEY as SYNC_STATE
from ocireg.sync.ondemand import mirrored, sync_on_demand
from ocireg.sync.settings import sync_settings
from ocireg.target import ClassifyMiddleware, Endpoint

if TYPE_CHECKING:
    from ocireg.sync.service import SyncService
    from ocireg.ui.pages import Pages

CONFIG_ENV = "OCIREG_CONFIG"
log = logging.getLogger("ocireg.server")


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (outside the API: no route, wrong method) in the spec's JSON
    envelope."""
    assert isinstance(exc, HTTPException)
    code = ErrorCode.METHOD_NOT_ALLOWED if exc.status_code == 405 else ErrorCode.NOT_FOUND
    err = RegistryError(code)
    return Response(err.body(), status_code=err.status, media_type="application/json")


def build_routes(config: Config, pages: Pages | None = None) -> list[BaseRoute]:
    """Starlette's routes: only what lies outside the API (`ocireg.api.routes` is the API's
    table, dispatched by `Dispatch`)."""
    routes: list[BaseRoute] = []
    settings = config.metrics
    if settings.enabled:
        # A route, so that it sits below authentication like any other endpoint.
        routes.append(Route(settings.path, metrics.metrics_endpoint, methods=["GET"]))
    if pages is not None:
        routes += pages.routes()  # the web pages (extensions.ui), `/` and `/ui/...`
    return routes


def _search_routes(config: Config) -> dict[tuple[Endpoint, str], Any]:
    """zot's GraphQL search and the extensions discovery, when `extensions.search` is on."""
    if not config.search.enabled:
        return {}
    # graphql-core costs every worker ~5 MiB when imported: only where search is on.
    from ocireg.api.graphql.endpoint import search_routes

    return search_routes(config)


def _userprefs_routes(config: Config) -> dict[tuple[Endpoint, str], Any]:
    """zot's stars and bookmarks, when `extensions.search` and `extensions.ui` are on."""
    if not config.search.enabled:
        return {}
    from ocireg.api.userprefs import userprefs_routes  # imports graphql-core, as search does

    return userprefs_routes(config)


def build_middleware(
    config: Config, auth: AuthServices | None, peers: Peers | None = None
) -> list[Middleware]:
    """The middleware stack, outermost first. One line per concern; None = not configured.
    `auth`: `build_auth(config)`, which the pages share."""
    stack = [
        # a response that comes before the body is read: read a short rest, or close the
        # connection after it (server/unread.py); outermost, so it sees error responses too
        Middleware(UnreadBody),
        # CORS: a browser's preflight answered here, before anything asks for credentials;
        # above the request context, whose error answers need the allow headers too
        cors(config, authenticated=auth is not None),
        # request id, access log, errors -> spec JSON; the catch-all of everything below
        Middleware(RequestContextMiddleware),
        # a body that stops arriving ends its request (408) and frees what it held
        Middleware(BodyIdleTimeout, seconds=config.http.body_idle_timeout),
        # metrics -- counts everything below, labelled by endpoint
        Middleware(metrics.MetricsMiddleware, path=config.metrics.path),
        # classify: what the request is aimed at, read once (scope["ocireg.target"]); every
        # layer below reads that; a request that cannot be read one way is refused here
        Middleware(ClassifyMiddleware),
        # cluster inbound: verify a forwarded request's proof, adopt its identity
        cluster_inbound(peers, replay_dir(config)),
        # zot's http.ratelimit: per client address, before any work is done for it; after
        # cluster inbound, so that requests a member forwarded are not counted twice
        rate_limit(config),
        # authenticate: htpasswd / bearer / anonymous -> scope["ocireg.identity"]
        authenticate(auth),
        # cluster forward: not the owner -> stream to the owner with the identity (on
        # shared storage only index writes, and only while the owner is up)
        cluster_forward(
            config,
            peers,
            on_forward=metrics.record_proxied,
            on_failover=metrics.record_failover,
            owner_reads=mirrored(config),
        ),
        # authorize: access-control policies, where the request is answered
        authorize(auth),
        # sync on demand: a mapped manifest/blob that is missing (or a tag due for a check)
        # is fetched from upstream first; here, so only the owner fetches, once authorized
        sync_on_demand(config),
        # the API's handlers, by endpoint and method; outside the API, Starlette's router
        Middleware(
            Dispatch,
            extra_routes={
                (Endpoint.CLUSTER, "GET"): cluster_status,
                **_search_routes(config),
                **mgmt_routes(config),
                **_userprefs_routes(config),
                **api_key_routes(config),
                **token_routes(auth),
            },
        ),
    ]
    return [m for m in stack if m is not None]


def create_app(
    config: Config, local_member: int | None = None, members_file: Path | None = None
) -> Starlette:
    """`local_member`: this instance's index in `cluster.members`, if already known;
    `members_file`: where the main process publishes a new member list (server/reload.py)."""
    membership = membership_from_config(config, local_member)
    peers = peers_from_config(config, membership, on_round=metrics.record_cluster_view)
    # One per worker, for the API and the pages alike: one remembered-credentials cache, one
    # bounded set of LDAP threads (auth/ldap.py).
    auth = build_auth(config)  # None unless http.auth or http.accessControl is configured
    pages = None
    if config.ui.enabled:
        from ocireg.ui.pages import Pages  # Jinja2: ~2 MiB per worker, only when needed

        pages = Pages(config, auth)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.store = build_store(config)
        await app.state.store.check_storage_layout()
        app.state.store.kick_rebuild()
        # Pulls are noted whether or not retention has policies now: rules on pulls added
        # later then see the pulls made before (registry/pulls.py).
        pulls = app.state.store.pulls = PullLog(app.state.store.meta)
        await pulls.start()
        app.state.config = config
        app.state.stream_slots = StreamSlots()
        app.state.redirect_blobs = config.storage.redirect_blob_url
        app.state.peers = peers
        # search and the pages' listings over the whole cluster (cluster/gather.py)
        app.state.search = ClusterSearch(app.state.store.search, peers)
        if peers is not None:  # a zot member does not keep ocireg's catalog index
            app.state.store.only_ocireg_writes = peers.all_ocireg
            # nor the index-version keys (neither does an older ocireg)
            app.state.store.indexes.versions.trusted = _trusts(app.state.store, peers)
        app.state.body_budget = BodyBudget(
            max(config.http.manifest_body_budget, MAX_MANIFEST_BYTES)
        )
        if config.metrics.enabled:
            metrics.enable()
            app.state.store.driver.on_request = metrics.record_storage_request
        service, background = _sync(config, app.state.store)
        setattr(app.state, SYNC_STATE, service)
        # In a cluster each member maintains (and syncs) only the repositories it owns (and,
        # on shared storage, those of a member that is down, when it is first in line).
        maintenance = Maintenance(
            config, app.state.store, owner_filter(membership, peers), background=background
        )
        maintenance.start()
        follower = None
        if peers is not None:
            peers.start(app.state.store.driver)
            if members_file is not None:
                following = MembersFile(members_file).follow(peers)
                follower = asyncio.create_task(following, name="ocireg-members-file")
        log.info("worker ready", extra={"pid": os.getpid()})
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            if peers is not None:
                await peers.stop()
            await maintenance.stop()
            await pulls.stop()
            if service is not None:
                await service.close()
            await app.state.store.close()
            if pages is not None:
                await pages.close()
            if auth is not None:
                await auth.close()

    app = Starlette(
        routes=build_routes(config, pages),
        middleware=build_middleware(config, auth, peers),
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    if pages is not None:
        setattr(app.state, PAGE_ERROR_KEY, pages.error_page)
    return app


def _sync(config: Config, store: ImageStore) -> tuple[SyncService | None, list[BackgroundJob]]:
    """The sync extension's service and its periodic job, when registries are configured
    (its upstream client, aiohttp, is imported only then)."""
    sync = sync_settings(config)
    if not (sync.enabled and sync.registries):
        return None, []
    from ocireg.sync.periodic import PeriodicSync
    from ocireg.sync.service import SyncService

    service = SyncService(sync, store, metrics.record_sync)
    return service, [PeriodicSync(service).run_forever] if sync.periodic else []


def _trusts(store: ImageStore, peers: Peers) -> Callable[[], bool]:
    """When readers may believe the index-version keys: this process keeps them, and so
    does every other member."""
    if not store.indexes.versions.writes:
        return lambda: False
    return peers.all_keep_index_versions


def app_from_environment() -> Starlette:
    """Granian's factory in each worker process: the configuration the main process
    published (server/reload.py), and the file's path for relative references and logs."""
    path = os.environ.get(CONFIG_ENV, "")
    data = os.environ.get(CONFIG_DATA_ENV)
    source = Path(path) if path else None
    config = build_config(json.loads(data), source=source) if data else load_config(source)
    setup_logging(config.log.level, config.log.output, config.log.audit)
    member = os.environ.get(LOCAL_MEMBER_ENV, "")
    members_file = os.environ.get(MEMBERS_FILE_ENV)
    return create_app(
        config,
        int(member) if member.isdigit() else None,
        Path(members_file) if members_file else None,
    )
