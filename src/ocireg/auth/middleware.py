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
from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.asgi import request_header, with_response_header
from ocireg.auth.basic import basic_pair
from ocireg.auth.conditions import RequestFacts, facts_of
from ocireg.auth.core import AuthServices, bearer_scope
from ocireg.auth.grants import TokenError, grants
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import (
    ANONYMOUS,
    CATALOG_FILTER_KEY,
    FORWARDED_KEY,
    IDENTITY_KEY,
    Identity,
    identity_of,
)
from ocireg.target import Action, Kind, Target, drop_mount, target_of

_BEARER_ACTIONS = {Action.READ: "pull", Action.CREATE: "push", Action.DELETE: "delete"}
# zot's UI names itself by this header; only then is the session cookie read (`_session`).
SESSION_CLIENT_HEADER, SESSION_CLIENT = b"x-zot-api-client", b"zot-ui"
SESSION_COOKIE = "ocireg_session"  # the web pages' (ocireg.ui.session.COOKIE)
NO_FACTS = RequestFacts()  # what a policy without conditions is decided with


def _authorization(scope: Scope) -> str | None:
    value = request_header(scope, b"authorization")
    return None if value is None else value.decode("latin-1")


class AuthenticateMiddleware:
    def __init__(self, app: ASGIApp, auth: AuthServices) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(FORWARDED_KEY):
            # Forwarded by a member that already authenticated it: the identity is in scope.
            await self.app(scope, receive, send)
            return
        aim = target_of(scope)
        # pages: the session cookie (ocireg.ui); the token exchange: the credentials it takes
        if aim.kind in (Kind.HEALTH, Kind.PAGE, Kind.TOKEN):
            await self.app(scope, receive, send)
            return
        identity = await self._identify(_authorization(scope), aim, scope)
        scope[IDENTITY_KEY] = identity
        if identity.anonymous and identity.method == "anonymous":
            if not self.auth.anonymous_allowed:
                raise self._refusal(aim)
            if aim.kind is Kind.PING:
                # As zot: 200, but the challenge tells clients that credentials are welcome.
                challenge = self.auth.challenge(aim).encode("latin-1")
                send = with_response_header(send, b"www-authenticate", challenge)
        await self.app(scope, receive, send)

    async def _identify(self, header: str | None, aim: Target, scope: Scope) -> Identity:
        if header is None:
            return await self._session(scope)
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        pair = basic_pair(credentials) if scheme == "basic" else None
        if pair == ("", ""):
            # containers/image sends `Basic Og==` (":") when it has no credentials; zot
            # reads that as anonymous too.
            return ANONYMOUS
        # Basic: passwords (htpasswd, LDAP), or API keys (which OpenID users make too)
        if scheme == "basic" and (self.auth.settings.logins or self.auth.api_keys is not None):
            meta = scope["app"].state.store.meta
            identity = None
            if pair is not None and pair[0]:
                identity = await self.auth.login(*pair, meta)
            if identity is not None:
                return identity
            await self._delay()
            raise self._refusal(aim, "invalid username or password")
        if scheme == "bearer" and self.auth.settings.bearer is not None:
            try:
                return await self._bearer(credentials.strip())
            except TokenError as exc:
                await self._delay()
                raise self._refusal(aim, str(exc), "invalid_token") from None
        if not self.auth.settings.logins and self.auth.settings.bearer is None:
            return ANONYMOUS  # accessControl alone: nobody can log in, credentials mean nothing
        await self._delay()
        raise self._refusal(aim, f"unsupported authorization scheme {scheme!r}")

    async def _bearer(self, token: str) -> Identity:
        """A workload's ID token first, then the token server's, as zot tries them; the
        reasons of both when neither takes it."""
        reasons = []
        if self.auth.workload is not None:
            try:
                return await self.auth.workload.verify(token)
            except TokenError as exc:
                reasons.append(str(exc))
        if self.auth.bearer is not None:
            try:
                return self.auth.bearer.verify(token)
            except TokenError as exc:
                reasons.append(str(exc))
        raise TokenError("; ".join(reasons))

    async def _session(self, scope: Scope) -> Identity:
        """A web session's user, as zot takes it: only when the request says it comes from
        the UI (`X-ZOT-API-CLIENT: zot-ui`). That header is the API's guard against
        cross-site requests riding on the cookie: a form or a link cannot send it, and a
        script of another origin cannot without the CORS preflight's consent."""
        reader = self.auth.session_identity
        if reader is None or request_header(scope, SESSION_CLIENT_HEADER) != SESSION_CLIENT:
            return ANONYMOUS
        raw = request_header(scope, b"cookie")
        cookie = cookie_parser(raw.decode("latin-1")).get(SESSION_COOKIE) if raw else None
        meta = scope["app"].state.store.meta
        identity = await reader(cookie, meta) if cookie else None
        return identity or ANONYMOUS

    def _refusal(
        self, aim: Target, reason: str | None = None, error: str | None = None
    ) -> RegistryError:
        return RegistryError(
            ErrorCode.UNAUTHORIZED,
            detail={"reason": reason} if reason else None,
            headers={"www-authenticate": self.auth.challenge(aim, error)},
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
        aim = target_of(scope)
        if aim.kind in (Kind.HEALTH, Kind.PING, Kind.PAGE, Kind.TOKEN):
            await self.app(scope, receive, send)  # the ping was settled by authentication
            return
        identity = identity_of(scope)
        if identity.method == "bearer":
            # The token server is the policy: its `access` claim decides (as zot).
            self._bearer(identity, aim, scope)
        else:
            await self._policy(identity, aim, scope)
        await self.app(scope, receive, send)

    def _bearer(self, identity: Identity, aim: Target, scope: Scope) -> None:
        if aim.kind is Kind.CATALOG:
            allowed = grants(identity.access, "registry", "catalog", "*")
        elif aim.kind is Kind.REPOSITORY and aim.repository is not None:
            action = _BEARER_ACTIONS[aim.action]
            allowed = grants(identity.access, "repository", aim.repository, action)
            if allowed and aim.mount_from is not None:
                allowed = grants(identity.access, "repository", aim.mount_from, "pull")
        else:
            allowed = False
        if not allowed:
            # A 401 naming the missing scope makes clients fetch a wider token (distribution's
            # token protocol), where a 403 would end the push.
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                "token does not grant this scope",
                detail={"scope": str(bearer_scope(aim))},
                headers={"www-authenticate": self.auth.challenge(aim, "insufficient_scope")},
            )

    async def _policy(self, identity: Identity, aim: Target, scope: Scope) -> None:
        policy = self.auth.policy
        if aim.kind is Kind.CATALOG:
            if policy is not None:
                scope[CATALOG_FILTER_KEY] = _readable_by(policy.can, identity)
            elif identity.anonymous:
                await self._refuse(identity, aim)
            return
        if aim.kind is Kind.USER:
            if identity.anonymous:
                await self._refuse(identity, aim)
            return
        if aim.kind is Kind.OTHER:
            allowed = policy.metrics_allowed(identity) if policy else not identity.anonymous
            if not allowed:
                await self._refuse(identity, aim)
            return
        repository = aim.repository
        assert repository is not None, "a repository endpoint has a valid repository"
        if policy is None:
            if identity.anonymous:
                await self._refuse(identity, aim)
            return
        # Conditions see the request (zot's `req`); without any, nothing need be read.
        facts = NO_FACTS if policy.conditions is None else facts_of(scope, aim.reference)
        action = aim.action.value
        if aim.tag is not None and not (
            policy.decide(identity, "create", repository, facts).allowed
            and policy.decide(identity, "update", repository, facts).allowed
        ):
            action = "update" if await _tag_exists(scope, repository, aim.tag) else "create"
        decision = policy.decide(identity, action, repository, facts)
        allowed = decision.allowed
        if allowed and aim.mount_from is not None:
            # The handler mounts from exactly this repository: both read the classification.
            # Unreadable: refused. Readable only under conditions this request does not meet
            # (an expired grant, say): no mount, a plain upload instead, so the blob's bytes
            # must be sent; a mount would hand over what a pull of it is refused.
            allowed = policy.can(identity, "read", aim.mount_from)
            if allowed and not policy.decide(identity, "read", aim.mount_from, facts).allowed:
                drop_mount(scope)
        if not allowed:
            await self._refuse(identity, aim, action, decision.reason)

    async def _refuse(
        self, identity: Identity, aim: Target, action: str | None = None, reason: str = ""
    ) -> None:
        # An anonymous first try is how clients discover auth: only slow down real refusals.
        if self.auth.settings.fail_delay > 0 and not identity.anonymous:
            await asyncio.sleep(self.auth.settings.fail_delay)
        detail = {"action": action or aim.action.value}
        if aim.repository is not None:
            detail["repository"] = aim.repository
        if reason and not identity.anonymous:
            detail["reason"] = reason  # a condition's message (zot's `detail.reason`)
        if identity.anonymous:
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                detail=detail,
                headers={"www-authenticate": self.auth.challenge(aim)},
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


async def _tag_exists(scope: Scope, repository: str, tag: str) -> bool:
    store = scope["app"].state.store
    try:
        tags: list[str] = await store.tags(repository)
    except RegistryError:  # no such repository yet: the tag is new
        return False
    return tag in tags
