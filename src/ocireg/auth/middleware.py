"""The two auth middlewares of the stack.

`AuthenticateMiddleware` runs on the member that received the request: it turns the
`Authorization` header into an `Identity` (or refuses it) once. `AuthorizeMiddleware` runs
on the repository's owner, after the cluster layer has (perhaps) forwarded the request with
that identity: whether a tag PUT creates or updates depends on the owner's state.

The only coupling with the rest of the app: the owner's tags are read through
`scope["app"].state.store`, and the catalog handler applies the predicate left in
`scope[CATALOG_FILTER_KEY]`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg import names
from ocireg.auth.bearer import TokenError, grants
from ocireg.auth.core import AuthServices, Kind, Need, need_of
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import ANONYMOUS, CATALOG_FILTER_KEY, FORWARDED_KEY, IDENTITY_KEY, Identity

_BEARER_ACTIONS = {"read": "pull", "create": "push", "update": "push", "delete": "delete"}


def _authorization(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            return str(value.decode("latin-1"))
    return None


class AuthenticateMiddleware:
    def __init__(self, app: ASGIApp, auth: AuthServices) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(FORWARDED_KEY):
            # Forwarded by a member that already authenticated it: the identity is in scope.
            await self.app(scope, receive, send)
            return
        need = need_of(scope["method"], scope["path"])
        if need.kind is Kind.HEALTH:
            await self.app(scope, receive, send)
            return
        identity = await self._identify(_authorization(scope), need)
        scope[IDENTITY_KEY] = identity
        if identity.anonymous and identity.method == "anonymous":
            if not self.auth.anonymous_allowed:
                raise self._refusal(need)
            if need.kind is Kind.PING:
                # As zot: 200, but the challenge tells clients that credentials are welcome.
                send = _with_header(send, b"www-authenticate", self.auth.challenge(need))
        await self.app(scope, receive, send)

    async def _identify(self, header: str | None, need: Need) -> Identity:
        if header is None:
            return ANONYMOUS
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and _empty_basic(credentials):
            # containers/image sends `Basic Og==` (":") when it has no credentials; zot
            # reads that as anonymous too.
            return ANONYMOUS
        if scheme == "basic" and self.auth.htpasswd is not None:
            user, password = _basic(credentials)
            if user is not None and await self.auth.htpasswd.check(user, password):
                groups = self.auth.policy.groups_of(user) if self.auth.policy else ()
                return Identity(user=user, groups=groups, method="basic")
            await self._delay()
            raise self._refusal(need, "invalid username or password")
        if scheme == "bearer" and self.auth.bearer is not None:
            try:
                return self.auth.bearer.verify(credentials.strip())
            except TokenError as exc:
                await self._delay()
                raise self._refusal(need, str(exc), "invalid_token") from None
        if self.auth.htpasswd is None and self.auth.bearer is None:
            return ANONYMOUS  # accessControl alone: nobody can log in, credentials mean nothing
        await self._delay()
        raise self._refusal(need, f"unsupported authorization scheme {scheme!r}")

    def _refusal(
        self, need: Need, reason: str | None = None, error: str | None = None
    ) -> RegistryError:
        return RegistryError(
            ErrorCode.UNAUTHORIZED,
            detail={"reason": reason} if reason else None,
            headers={"www-authenticate": self.auth.challenge(need, error)},
        )

    async def _delay(self) -> None:
        if self.auth.settings.fail_delay > 0:
            await asyncio.sleep(self.auth.settings.fail_delay)


class AuthorizeMiddleware:
    def __init__(self, app: ASGIApp, auth: AuthServices) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = need_of(scope["method"], scope["path"])
        if need.kind in (Kind.HEALTH, Kind.PING):
            await self.app(scope, receive, send)  # the ping was settled by authentication
            return
        identity: Identity = scope.get(IDENTITY_KEY) or ANONYMOUS
        if identity.method == "bearer":
            # The token server is the policy: its `access` claim decides (as zot).
            self._bearer(identity, need, scope)
        else:
            await self._policy(identity, need, scope)
        await self.app(scope, receive, send)

    def _bearer(self, identity: Identity, need: Need, scope: Scope) -> None:
        if need.kind is Kind.CATALOG:
            allowed = grants(identity.access, "registry", "catalog", "*")
        elif need.kind is Kind.REPOSITORY and need.repository is not None:
            action = _BEARER_ACTIONS[need.action]
            allowed = grants(identity.access, "repository", need.repository, action)
            source = _mount_source(scope)
            if allowed and source is not None:
                allowed = grants(identity.access, "repository", source, "pull")
        else:
            allowed = False
        if not allowed:
            # A 401 naming the missing scope makes clients fetch a wider token (distribution's
            # token protocol), where a 403 would end the push.
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                "token does not grant this scope",
                detail={"scope": str(need.bearer_scope())},
                headers={"www-authenticate": self.auth.challenge(need, "insufficient_scope")},
            )

    async def _policy(self, identity: Identity, need: Need, scope: Scope) -> None:
        policy = self.auth.policy
        if need.kind is Kind.CATALOG:
            if policy is not None:
                scope[CATALOG_FILTER_KEY] = _readable_by(policy.can, identity)
            elif identity.anonymous:
                await self._refuse(identity, need)
            return
        if need.kind is Kind.OTHER:
            allowed = policy.metrics_allowed(identity) if policy else not identity.anonymous
            if not allowed:
                await self._refuse(identity, need)
            return
        assert need.repository is not None
        repository = names.validate_name(need.repository)
        if policy is None:
            if identity.anonymous:
                await self._refuse(identity, need)
            return
        action = need.action
        if need.tag is not None and not (
            policy.can(identity, "create", repository)
            and policy.can(identity, "update", repository)
        ):
            action = "update" if await _tag_exists(scope, repository, need.tag) else "create"
        allowed = policy.can(identity, action, repository)
        source = _mount_source(scope)
        if allowed and source is not None:
            allowed = policy.can(identity, "read", source)
        if not allowed:
            await self._refuse(identity, need, action)

    async def _refuse(self, identity: Identity, need: Need, action: str | None = None) -> None:
        # An anonymous first try is how clients discover auth: only slow down real refusals.
        if self.auth.settings.fail_delay > 0 and not identity.anonymous:
            await asyncio.sleep(self.auth.settings.fail_delay)
        detail = {"action": action or need.action}
        if need.repository is not None:
            detail["repository"] = need.repository
        if identity.anonymous:
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                detail=detail,
                headers={"www-authenticate": self.auth.challenge(need)},
            )
        raise RegistryError(ErrorCode.DENIED, detail=detail)


def authenticate(auth: AuthServices | None) -> Middleware | None:
    return None if auth is None else Middleware(AuthenticateMiddleware, auth=auth)


def authorize(auth: AuthServices | None) -> Middleware | None:
    return None if auth is None else Middleware(AuthorizeMiddleware, auth=auth)


def _readable_by(
    can: Callable[[Identity, str, str], bool], identity: Identity
) -> Callable[[str], bool]:
    return lambda repository: can(identity, "read", repository)


def _mount_source(scope: Scope) -> str | None:
    """The `from` repository of a cross-repository mount: reading from it needs `read`."""
    if scope["method"] != "POST" or b"mount=" not in scope.get("query_string", b""):
        return None
    query = parse_qs(scope["query_string"].decode("latin-1"))
    source = (query.get("from") or [None])[0]
    return names.validate_name(source) if source else None


async def _tag_exists(scope: Scope, repository: str, tag: str) -> bool:
    store = scope["app"].state.store
    try:
        tags: list[str] = await store.tags(repository)
    except RegistryError:  # no such repository yet: the tag is new
        return False
    return tag in tags


def _with_header(send: Send, name: bytes, value: str) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (name, value.encode("latin-1"))]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _basic(credentials: str) -> tuple[str | None, str]:
    """`user:password` from a Basic credential; (None, "") when it is not decodable."""
    try:
        text = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, sep, password = text.partition(":")
    return (user, password) if sep and user else (None, "")


def _empty_basic(credentials: str) -> bool:
    try:
        return base64.b64decode(credentials.strip(), validate=True) == b":"
    except binascii.Error:
        return False
