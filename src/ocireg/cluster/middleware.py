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
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg.cluster.membership import Membership
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
from ocireg.cluster.proxy import Forwarder, client_ssl_context
from ocireg.config import Config
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import ANONYMOUS, FORWARDED_KEY, IDENTITY_KEY
from ocireg.names import repository_of, validate_name

log = logging.getLogger("ocireg.cluster")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


class ClusterInboundMiddleware:
    def __init__(
        self, app: ASGIApp, membership: Membership, replay_dir: Path | None = None
    ) -> None:
        self.app = app
        key = derive_key(membership.hash_key)
        self.verifier = ProofVerifier(key, membership.local_member, replay_dir)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._classify(scope)
        await self.app(scope, receive, send)

    def _classify(self, scope: Scope) -> Scope:
        if not any(key.lower() in CLUSTER_HEADERS for key, _ in scope["headers"]):
            return scope
        clean = {
            **scope,
            "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in CLUSTER_HEADERS],
        }
        if _header(scope, HOP_HEADER) is None:
            return clean  # proof or identity without a hop: a client's invention
        try:
            identity = self.verifier.verify(
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                _header(scope, PROOF_HEADER),
                _header(scope, IDENTITY_HEADER),
            )
        except ProofError as exc:
            log.warning(
                "hop header without valid proof; handled as a client request",
                extra={"reason": str(exc), "client": (scope.get("client") or ("-",))[0]},
            )
            return clean
        return {**clean, FORWARDED_KEY: True, IDENTITY_KEY: identity}


class ClusterForwardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        membership: Membership,
        forwarder: Forwarder,
        on_forward: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.app = app
        self.membership = membership
        self.forwarder = forwarder
        # Called with (member, failed) after each forwarded request: the server's metrics.
        self.on_forward = on_forward
        self.key = derive_key(membership.hash_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing_on_shutdown(receive), send)
            return
        owner = self._owner(scope) if scope["type"] == "http" else None
        if owner is None:
            await self.app(scope, receive, send)
            return
        target = self.membership.members[owner]
        if scope.get(FORWARDED_KEY):
            log.error(
                "forwarded request for a repository this member does not own; the member "
                "lists of the cluster disagree",
                extra={"path": scope["path"], "owner_here": target},
            )
            raise RegistryError(
                ErrorCode.LOOP_DETECTED,
                detail={"member": self.membership.local_member, "owner": target},
            )
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

    def _owner(self, scope: Scope) -> int | None:
        """Index of the owner when it is another member, else None (answer here)."""
        repository = repository_of(scope["path"])
        if repository is None:
            return None
        try:
            validate_name(repository)
        except RegistryError:
            return None  # every member rejects a bad name the same way: no need to forward
        owner = self.membership.owner_of(repository)
        return None if owner == self.membership.local_index else owner

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message: dict[str, Any] = dict(await receive())
            if message.get("type") == "lifespan.shutdown":
                await self.forwarder.close()
            return message

        return wrapped


def cluster_inbound(
    membership: Membership | None, replay_dir: Path | None = None
) -> Middleware | None:
    if membership is None:
        return None
    return Middleware(ClusterInboundMiddleware, membership=membership, replay_dir=replay_dir)


def cluster_forward(
    config: Config,
    membership: Membership | None,
    on_forward: Callable[[str, bool], None] | None = None,
) -> Middleware | None:
    if membership is None:
        return None
    forwarder = Forwarder(client_ssl_context(config))
    return Middleware(
        ClusterForwardMiddleware, membership=membership, forwarder=forwarder, on_forward=on_forward
    )
