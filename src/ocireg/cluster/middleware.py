"""The two cluster middlewares (see server/app.py:build_middleware for where they sit).

Inbound, outside authentication: a request carrying the hop header and a valid proof is a
member's; it is marked forwarded and its signed identity adopted. Anything else that claims to
be a hop is treated as a client request with the claim removed.

Forward, inside authentication: a request for a repository another member owns goes to that
member with the caller's identity signed; one that a member already forwarded and that is still
not ours (the member lists disagree) is refused with 508 rather than sent around again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg.asgi import request_header, with_response_header
from ocireg.cluster.peers import FINGERPRINT_HEADER, INDEX_VERSIONS_HEADER, Peers
from ocireg.cluster.proof import (
    CLUSTER_HEADERS,
    HOP_HEADER,
    IDENTITY_HEADER,
    PROOF_HEADER,
    ProofError,
    ProofVerifier,
    derive_key,
    sign,
)
from ocireg.config import Config
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import ANONYMOUS, FORWARDED_KEY, IDENTITY_KEY
from ocireg.registry.manifests import MAX_MANIFEST_BYTES
from ocireg.target import Endpoint, target_of

if TYPE_CHECKING:
    from ocireg.cluster.proxy import Forwarder

log = logging.getLogger("ocireg.cluster")


class ClusterInboundMiddleware:
    def __init__(self, app: ASGIApp, peers: Peers, replay_dir: Path | None = None) -> None:
        self.app = app
        self.peers = peers
        # The key and this member's own entry stay the same while the list changes
        # (server/reload.py applies a new list in place only then).
        membership = peers.membership
        key = derive_key(membership.hash_key)
        self.verifier = ProofVerifier(key, membership.local_member, replay_dir)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._classify(scope)
            if target_of(scope).endpoint is Endpoint.LIVEZ:
                # This member's routing fingerprint, so that the peers' probes notice
                # members that route differently (cluster/peers.py).
                fingerprint = self.peers.membership.fingerprint.encode()
                send = with_response_header(send, FINGERPRINT_HEADER, fingerprint)
                # ... and that this member keeps the index-version keys when it writes
                # (registry/versions.py): older members do not, so no peer trusts them.
                send = with_response_header(send, INDEX_VERSIONS_HEADER, b"1")
        await self.app(scope, receive, send)

    def _classify(self, scope: Scope) -> Scope:
        if not any(key.lower() in CLUSTER_HEADERS for key, _ in scope["headers"]):
            return scope
        clean = {
            **scope,
            "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in CLUSTER_HEADERS],
        }
        if request_header(scope, HOP_HEADER) is None:
            return clean  # proof or identity without a hop: a client's invention
        try:
            identity = self.verifier.verify(
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                request_header(scope, PROOF_HEADER),
                request_header(scope, IDENTITY_HEADER),
            )
        except ProofError as exc:
            # A zot member forwards with the hop header and no proof: routine in a mixed
            # cluster. A proof that does not verify is someone trying.
            level = logging.WARNING if request_header(scope, PROOF_HEADER) else logging.DEBUG
            log.log(
                level,
                "hop header without valid proof; handled as a client request",
                extra={"reason": str(exc), "client": (scope.get("client") or ("-",))[0]},
            )
            return clean
        # Told to the outer middlewares too: the audit log leaves a forwarded request to the
        # member that received it from the client, and events name its user
        # (server/context.py).
        scope[FORWARDED_KEY] = True
        scope[IDENTITY_KEY] = identity
        return {**clean, FORWARDED_KEY: True, IDENTITY_KEY: identity}


# Requests that change what a repository's index.json says: on shared storage these alone
# still go to the owner (fewer writers per repository, warm caches); everything else reads,
# or adds content-addressed data, and is answered by the member that received it.
_INDEX_WRITES = frozenset(
    {(Endpoint.MANIFEST, "PUT"), (Endpoint.MANIFEST, "DELETE"), (Endpoint.BLOB, "DELETE")}
)
# A manifest PUT's body is kept (up to the manifest limit) so that it can be answered here
# when the owner dies before answering.
_REPLAY_LIMIT = MAX_MANIFEST_BYTES + 1


class ClusterForwardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        forwarder: Forwarder,
        peers: Peers,
        on_forward: Callable[[str, bool], None] | None = None,
        on_failover: Callable[[str], None] | None = None,
        owner_reads: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        # Repositories whose reads go to the owner on shared storage too (sync's mirrors:
        # the owner alone fetches from the upstream).
        self.owner_reads = owner_reads
        self.forwarder = forwarder
        self.peers = peers
        # Called with (member, failed) after each forwarded request, and with the member
        # whose request was answered here instead: the server's metrics.
        self.on_forward = on_forward
        self.on_failover = on_failover
        self.key = derive_key(peers.membership.hash_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing_on_shutdown(receive), send)
            return
        # The owner is named by address: the member list may change while this request
        # is under way (Peers.update), and it still goes where it was first meant to go.
        owner = await self._owner(scope) if scope["type"] == "http" else None
        if owner is None:
            await self.app(scope, receive, send)
            return
        try:
            await self._to_owner(scope, receive, send, owner)
        except RegistryError as err:
            if err.code is ErrorCode.UNAVAILABLE:
                # Not answered by failover either: the client gets the 503.
                log.error(
                    "request failed: the member that owns the repository is unreachable",
                    extra={"member": owner, "path": scope["path"]},
                )
            raise

    async def _to_owner(self, scope: Scope, receive: Receive, send: Send, owner: str) -> None:
        if not self.peers.shares(owner):
            await self._forward(scope, receive, send, owner)
            return
        # Shared storage: if the owner fails before answering, answer here. The kept body
        # counts against the worker's manifest budget like a body a handler holds.
        budget = getattr(scope["app"].state, "body_budget", None)
        taken = 0

        def take(size: int) -> bool:
            nonlocal taken
            if budget is not None and not budget.take(size):
                return False
            taken += size
            return True

        try:
            reader, complete = await _kept_body(receive, take)
            await self._forward_or_answer(scope, reader, complete, send, owner)
        finally:
            if budget is not None:
                budget.give(taken)

    async def _forward_or_answer(
        self,
        scope: Scope,
        reader: Callable[[], Receive],
        complete: bool,
        send: Send,
        owner: str,
    ) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._forward(scope, reader(), sending, owner)
        except RegistryError as err:
            if err.code is not ErrorCode.UNAVAILABLE or started or not complete:
                raise
            self.peers.mark_down(owner, "a forwarded request could not reach it")
            self._failed_over(owner)
            await self.app(scope, reader(), send)

    async def _owner(self, scope: Scope) -> str | None:
        """The member to forward to, or None to answer here."""
        aim = target_of(scope)
        if aim.repository is None:
            return None
        membership = self.peers.membership
        owner = membership.owner_member(aim.repository)
        if owner == membership.local_member:
            return None
        if self.peers.shares(owner):
            owner_reads = self.owner_reads is not None and self.owner_reads(aim.repository)
            if (aim.endpoint, scope["method"]) not in _INDEX_WRITES and not owner_reads:
                return None  # reads and uploads: no hop on shared storage
            if scope.get(FORWARDED_KEY):
                return None  # the member lists disagree; the storage is shared: answer here
            if not self.peers.is_up(owner):
                self._failed_over(owner)
                return None
            return owner
        if scope.get(FORWARDED_KEY):
            if await self.peers.shares_now(owner):
                # A member that joined a moment ago, whose record had not been read yet.
                return None
            log.error(
                "forwarded request for a repository this member does not own; the member "
                "lists of the cluster disagree",
                extra={"path": scope["path"], "owner_here": owner},
            )
            raise RegistryError(
                ErrorCode.LOOP_DETECTED,
                detail={"member": membership.local_member, "owner": owner},
            )
        return owner

    def _failed_over(self, owner: str) -> None:
        if self.on_failover is not None:
            self.on_failover(owner)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, target: str) -> None:
        identity = scope.get(IDENTITY_KEY, ANONYMOUS)
        hop = sign(
            self.key,
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            target,
            identity,
        )
        extra = [(HOP_HEADER, b"1"), (PROOF_HEADER, hop.proof), (IDENTITY_HEADER, hop.identity)]
        if self.on_forward is None:
            await self.forwarder.forward(scope, receive, send, target, extra)
            return
        failed = True
        try:
            await self.forwarder.forward(scope, receive, send, target, extra)
            failed = False
        except RegistryError as err:
            failed = err.code is ErrorCode.UNAVAILABLE  # the member, not the request, failed
            raise
        except ClientDisconnect:
            failed = False
            raise
        finally:
            self.on_forward(target, failed)

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message: dict[str, Any] = dict(await receive())
            if message.get("type") == "lifespan.shutdown":
                await self.forwarder.close()
            return message

        return wrapped


async def _kept_body(
    receive: Receive, take: Callable[[int], bool]
) -> tuple[Callable[[], Receive], bool]:
    """Readers of the request that each start from the first byte, and whether the body was
    kept whole: it is read ahead up to _REPLAY_LIMIT bytes (index writes carry a manifest or
    nothing), while `take` grants the memory. Past that a second reader would miss what the
    first one took."""
    kept: list[Message] = []
    size = 0
    complete = False
    while size < _REPLAY_LIMIT:
        message = await receive()
        kept.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not take(len(message.get("body", b""))):
            break  # over the budget: forwarded as it comes, without a second chance
        if not message.get("more_body", False):
            complete = True
            break

    def reader() -> Receive:
        queue = list(kept)

        async def replay() -> Message:
            # After the kept messages, the client's own: the rest of a long body, or the
            # disconnect that a finished request waits for.
            return queue.pop(0) if queue else await receive()

        return replay

    return reader, complete


def cluster_inbound(peers: Peers | None, replay_dir: Path | None = None) -> Middleware | None:
    if peers is None:
        return None
    return Middleware(ClusterInboundMiddleware, peers=peers, replay_dir=replay_dir)


def cluster_forward(
    config: Config,
    peers: Peers | None,
    on_forward: Callable[[str, bool], None] | None = None,
    on_failover: Callable[[str], None] | None = None,
    owner_reads: Callable[[str], bool] | None = None,
) -> Middleware | None:
    if peers is None:
        return None
    # The proxy's aiohttp client: imported only in a cluster (server/app.py builds this
    # stack for every instance).
    from ocireg.cluster.proxy import Forwarder
    from ocireg.cluster.tls import client_ssl_context

    forwarder = Forwarder(client_ssl_context(config))
    return Middleware(
        ClusterForwardMiddleware,
        forwarder=forwarder,
        peers=peers,
        on_forward=on_forward,
        on_failover=on_failover,
        owner_reads=owner_reads,
    )
