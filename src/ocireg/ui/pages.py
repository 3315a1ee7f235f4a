"""The web pages (`extensions.ui`): Starlette routes rendering Jinja2 templates.

Paths are `/` and `/ui/...` (`ocireg.target.is_page`): classified as pages, they skip the
API's authentication and authorization, which speak Basic and Bearer; a page finds its
user in the session cookie (`ocireg.ui.session`) and asks, for every repository it names or
counts, whoever the API asks about that user: the `AccessPolicy` for an htpasswd user, the
`AccessPolicy` with the groups the directory gives now for an LDAP user, the token server for
a bearer user (`ocireg.ui.tokens`).

In a cluster, a page about one repository (its tags, an image, a delete) names it in its
classification (`target.page_repository`): on shared storage the member that received it
answers, with separate storage the cluster layer sends it to the member that stores it,
like an API request (the session cookie is valid there: its key comes from `hashKey`).
The repositories list and search gather the members' parts (`ocireg.cluster.gather`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ocireg import names
from ocireg.auth.conditions import RequestFacts, facts_of
from ocireg.auth.core import AuthServices, DirectoryDown
from ocireg.config import Config
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import ANONYMOUS, Identity
from ocireg.meta.base import MetaStore, MetaUnavailable
from ocireg.registry.search import Screen
from ocireg.target import parse_query
from ocireg.ui import data
from ocireg.ui.session import (
    COOKIE,
    CSRF_COOKIE,
    LIFETIME,
    Session,
    Sessions,
    instance_secret,
    session_token,
)
from ocireg.ui.tokens import Credentials, TokenClient, TokenRefused, TokenServerDown

log = logging.getLogger("ocireg.ui")
HERE = Path(__file__).parent
PAGE_SIZE = 50
FORM_MAX = 16 * 1024  # bytes of a form's body
# A bearer user's credentials travel sealed in the cookie, which browsers cap at 4 KiB.
USER_MAX, PASSWORD_MAX = 256, 2048
Handler = Callable[[Request], Awaitable[Response]]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}" if hex_ else digest


def _repo_url(repo: str) -> str:
    return "/ui/repo/" + quote(repo)


def _image_url(repo: str, digest: str) -> str:
    return f"/ui/image/{quote(repo)}@{digest}"


class SessionEnded(Exception):
    """The session's user is gone: the LDAP directory no longer has them."""


class Pages:
    def __init__(self, config: Config, auth: AuthServices | None) -> None:
        """`auth`: the API's own services (None without http.auth and accessControl), so
        that a page and a request check a user alike, and share the LDAP threads."""
        self.config = config
        self.auth = auth
        htpasswd = auth.htpasswd if auth else None
        bearer = auth.bearer if auth else None
        self.tokens = TokenClient(bearer) if bearer is not None else None
        secret = config.cluster.hash_key if config.cluster else instance_secret()
        openid = auth.settings.openid if auth else None
        self.sessions = Sessions(
            htpasswd,
            secret,
            sealed=bearer is not None,
            directory=auth is not None and auth.ldap is not None,
            openid=openid is not None,
        )
        self.openid = None
        if openid is not None:
            from ocireg.ui.openid import OpenIdLogins  # PyJWT: only where OpenID is configured

            self.openid = OpenIdLogins(self, openid, config)
        if auth is not None:
            auth.session_identity = self.api_identity
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(size=_size, when=_when, short=_short)
        self.env.globals.update(repo_url=_repo_url, image_url=_image_url)

    async def close(self) -> None:
        if self.tokens is not None:
            await self.tokens.close()
        if self.openid is not None:
            await self.openid.close()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._page(self.repositories), methods=["GET"]),
            Route("/ui", _home, methods=["GET"]),
            Route("/ui/", _home, methods=["GET"]),
            Route("/ui/search", self._page(self.search), methods=["GET"]),
            Route("/ui/repo/{name:path}", self._page(self.repository), methods=["GET"]),
            Route("/ui/image/{ref:path}", self._page(self.image), methods=["GET"]),
            Route("/ui/delete", self._page(self.confirm_delete), methods=["GET"]),
            Route("/ui/delete", self._page(self.delete), methods=["POST"]),
            Route("/ui/login", self._page(self.login_form, public=True), methods=["GET"]),
            Route("/ui/login", self._page(self.login, public=True), methods=["POST"]),
            Route("/ui/logout", self._page(self.logout, public=True), methods=["POST"]),
            Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="static"),
            # any other page path: the pages' own 404, not the API's JSON
            Route("/ui/{rest:path}", self._page(self.not_found), methods=["GET"]),
            *(self.openid.routes(self._public) if self.openid is not None else ()),
        ]

    # --- who is asking ---------------------------------------------------------------------

    def identity(self, request: Request) -> Identity:
        """The session's user, from the cookie alone; a bearer user's credentials go to
        `request.state.credentials`. An LDAP user's (method "directory") has only the groups
        accessControl names: `_page` asks the directory before anything is decided."""
        session = self.sessions.verify(request.cookies.get(COOKIE))
        request.state.credentials = None
        if session is None:
            return ANONYMOUS
        if session.password is not None:
            request.state.credentials = Credentials(session.user, session.password)
            return Identity(user=session.user, method="token")
        return self._session_identity(session)

    def _session_identity(self, session: Session) -> Identity:
        """An htpasswd, LDAP or OpenID session's user, with the groups accessControl names
        them in (and an OpenID user's from the provider's token)."""
        groups = self.auth.groups_of(session.user, session.groups or ()) if self.auth else ()
        method = "directory" if session.directory else "session"
        return Identity(user=session.user, groups=groups, method=method)

    async def api_identity(self, cookie: str, meta: MetaStore) -> Identity | None:
        """The user an API request's session cookie stands for (`AuthServices.
        session_identity`), or None: a bearer user's session is not taken (the token server
        decides for them), nor one a logout ended (or whose end the metadata store cannot
        say), nor one whose user the directory no longer has or cannot say."""
        session = self.sessions.verify(cookie)
        if session is None or session.password is not None:
            return None
        try:
            if await meta.session_ended(session_token(cookie)):
                return None
        except MetaUnavailable:
            return None
        identity = self._session_identity(session)
        if identity.method == "directory":
            try:
                return await self._from_directory(identity)
            except (SessionEnded, DirectoryDown):
                return None
        return identity

    async def allowed(self, request: Request, action: str, repos: list[str]) -> list[str]:
        """The repositories, in order, on which the user may do `action`: the token server
        decides for a bearer user, as for the API; else the policy (`can`)."""
        creds: Credentials | None = request.state.credentials
        if creds is not None and self.tokens is not None:
            return await self.tokens.allowed(creds, action, repos)
        identity: Identity = request.state.identity
        # A change (a delete) is decided as the API decides it, conditions evaluated against
        # this request; a read only lists or shows, as the API's catalog does (auth/policy.py).
        facts = None if action == "read" else facts_of(request.scope, None)
        return [repo for repo in repos if self.can(identity, action, repo, facts)]

    async def may(self, request: Request, action: str, repo: str) -> bool:
        return bool(await self.allowed(request, action, [repo]))

    def can(
        self, identity: Identity, action: str, repo: str, facts: RequestFacts | None = None
    ) -> bool:
        """As the API decides (auth/middleware.py, AuthorizeMiddleware._policy); policy
        conditions evaluated against `facts` when given."""
        if identity.method == "token":
            return False  # a bearer user: only the token server decides (`allowed`)
        if self.auth is None:
            return True  # no http.auth, no accessControl: the API lets everyone do anything
        if self.auth.policy is not None:
            if facts is not None:
                return self.auth.policy.decide(identity, action, repo, facts).allowed
            return self.auth.policy.can(identity, action, repo)
        return not identity.anonymous

    def anonymous_allowed(self) -> bool:
        return self.auth is None or self.auth.anonymous_allowed

    def _public(self, handler: Handler) -> Handler:
        return self._page(handler, public=True)

    def _page(self, handler: Handler, public: bool = False) -> Handler:
        """Every page: anonymous users go to the login page unless anonymous access is
        allowed; a RegistryError becomes an error page with its status."""

        async def page(request: Request) -> Response:
            identity = self.identity(request)
            if not identity.anonymous:
                try:
                    if await self._ended(request):
                        identity, request.state.credentials = ANONYMOUS, None
                except MetaUnavailable as exc:
                    log.warning("cannot check the session", extra={"error": str(exc)})
                    return self._unavailable(request, "The metadata store did not answer")
            request.state.identity = identity
            if not public and identity.anonymous and not self.anonymous_allowed():
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/ui/login?" + urlencode({"next": target}), 303)
            try:
                if not public and identity.method == "directory":
                    identity = await self._from_directory(identity)
                    request.state.identity = identity
                return await handler(request)
            except RegistryError as err:
                return self._error(request, err)
            except (TokenRefused, SessionEnded):
                # The token server no longer takes this session's credentials, or the
                # directory no longer has the user: log in again.
                response = RedirectResponse("/ui/login", 303)
                response.delete_cookie(COOKIE, path="/")
                return response
            except TokenServerDown as exc:
                log.warning("token server unavailable", extra={"error": str(exc)})
                return self._unavailable(request, "The token server did not answer")
            except DirectoryDown:  # logged where it happened
                return self._unavailable(request, "The LDAP directory did not answer")

        return page

    async def _ended(self, request: Request) -> bool:
        """Whether a logout ended the session of the request's cookie (its user's identity
        came from the cookie: `identity`)."""
        meta: MetaStore = request.app.state.store.meta
        return await meta.session_ended(session_token(request.cookies.get(COOKIE, "")))

    async def end_session(self, request: Request) -> None:
        """A logout: the session of the request's cookie is noted as ended, so that a copy
        of the cookie is no longer taken, by the pages or the API, on any worker (and any
        member sharing the metadata store). If the store cannot note it, the browser's
        cookie is deleted all the same and the session lasts until it expires (logged)."""
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.verify(cookie)
        if cookie is None or session is None:
            return
        meta: MetaStore = request.app.state.store.meta
        try:
            await meta.end_session(session_token(cookie), session.expires)
        except MetaUnavailable as exc:
            log.warning(
                "logout not noted: the session stays good until it expires",
                extra={"user": session.user, "error": str(exc)},
            )

    def error_page(self, scope: Scope, err: RegistryError) -> Response:
        """An error raised before the page ran (the cluster layer's, when the member that
        stores the repository did not answer), as the pages show errors."""
        request = Request(scope)
        request.state.identity = self.identity(request)
        return self._error(request, err)

    def _error(self, request: Request, err: RegistryError) -> Response:
        status = err.status if err.status in (400, 403, 404, 503) else 500
        titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 503: "Unavailable"}
        message = {
            ErrorCode.NAME_UNKNOWN: "There is no such repository, or you may not see it.",
            ErrorCode.MANIFEST_UNKNOWN: "There is no such image in this repository.",
            ErrorCode.NAME_INVALID: "That is not a repository name.",
            ErrorCode.DIGEST_INVALID: "That is not a digest.",
            ErrorCode.UNAVAILABLE: "The storage did not answer. Try again in a moment.",
            ErrorCode.NOT_FOUND: "There is no such page.",
        }.get(err.code, err.message)
        return self.render(
            request,
            "error.html",
            {"title": titles.get(status, "Error"), "message": message},
            status=status,
        )

    async def _from_directory(self, identity: Identity) -> Identity:
        """An LDAP user's identity with the groups the directory gives now (looked up at most
        once a minute per worker); SessionEnded when it no longer has the user."""
        assert self.auth is not None and identity.user is not None
        found = await self.auth.directory_user(identity.user, "directory")
        if found is None:
            raise SessionEnded(identity.user)
        return found

    def _unavailable(self, request: Request, what: str) -> Response:
        message = f"{what}, so access cannot be checked. Try again soon."
        context = {"title": "Unavailable", "message": message}
        return self.render(request, "error.html", context, status=503)

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        identity: Identity = getattr(request.state, "identity", ANONYMOUS)
        providers = [] if self.openid is None else list(self.openid.settings.providers.values())
        html = self.env.get_template(template).render(
            request=request,
            user=identity.user,
            login_enabled=self.auth is not None
            and (self.auth.settings.logins or self.auth.bearer is not None or bool(providers)),
            password_login=self.auth is not None
            and (self.auth.settings.logins or self.auth.bearer is not None),
            openid_providers=providers,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        # Pages name repositories a user may read: never kept by shared caches, never framed.
        response.headers["cache-control"] = "no-store"
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = (
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
        )
        return response

    async def _readable(self, request: Request, repo: str) -> str:
        """The repository name, when the user may read it; else as if it did not exist."""
        try:
            repo = names.validate_name(repo)
        except RegistryError:
            raise RegistryError(ErrorCode.NAME_INVALID) from None
        if not await self.may(request, "read", repo):
            raise RegistryError(ErrorCode.NAME_UNKNOWN)  # 404: the name is not confirmed
        return repo

    def _screen(self, request: Request) -> Screen:
        """What a list or a search keeps: the names the user may read, a chunk at a time."""

        async def screen(repos: list[str]) -> list[str]:
            return await self.allowed(request, "read", repos)

        return screen

    # --- pages -------------------------------------------------------------------------------

    async def repositories(self, request: Request) -> Response:
        q = request.query_params.get("q", "").strip()[:200]
        after = request.query_params.get("after") or None
        limit = _int_param(request, "n", PAGE_SIZE)
        started = time.perf_counter()
        page = await data.repository_page(
            request.app.state.search, q, after, limit, self._screen(request), request.state.identity
        )
        more = None
        if page.next_after is not None:
            query = {"q": q} if q else {}
            if limit != PAGE_SIZE:
                query["n"] = str(limit)
            more = "/?" + urlencode(query | {"after": page.next_after})
        return self.render(
            request,
            "repos.html",
            {
                "q": q,
                "after": after,
                "repos": page.repos,
                "next_url": more,
                "missing": page.missing,
                "elapsed": (time.perf_counter() - started) * 1000,
            },
        )

    async def search(self, request: Request) -> Response:
        """Repositories whose name, and tags whose tag, annotations (title, description,
        vendor, source) or artifact type contain the text: the search index's answer."""
        q = request.query_params.get("q", "").strip()[:200]
        limit = _int_param(request, "n", PAGE_SIZE)
        found = await request.app.state.search.query(
            q, limit, request.state.identity, screen=self._screen(request)
        )
        return self.render(
            request,
            "search.html",
            {"q": q, "result": found.result, "limit": limit, "missing": found.missing},
        )

    async def repository(self, request: Request) -> Response:
        repo = await self._readable(request, request.path_params["name"])
        after = request.query_params.get("after") or None
        page = await data.tag_page(
            request.app.state.store, repo, after, _int_param(request, "n", 100)
        )
        host = request.headers.get("host") or request.url.netloc
        next_url = None
        if page.next_after is not None:
            next_url = _repo_url(repo) + "?" + urlencode({"after": page.next_after})
        return self.render(
            request,
            "repo.html",
            {"repo": repo, "page": page, "host": host, "next_url": next_url, "after": after},
        )

    async def image(self, request: Request) -> Response:
        repo, digest = _split_ref(request.path_params["ref"])
        repo = await self._readable(request, repo)
        view = await data.image_view(request.app.state.store, repo, digest)
        may_delete = await self.may(request, "delete", repo)
        host = request.headers.get("host") or request.url.netloc
        return self.render(
            request, "image.html", {"view": view, "may_delete": may_delete, "host": host}
        )

    async def confirm_delete(self, request: Request) -> Response:
        repo = await self._readable(request, _single(request, "repo"))
        reference = _single(request, "reference")
        if not await self.may(request, "delete", repo):
            raise RegistryError(ErrorCode.DENIED)
        desc = await request.app.state.store.resolve(repo, reference)
        seed = self._csrf_seed(request)
        response = self.render(
            request,
            "confirm.html",
            {
                "repo": repo,
                "reference": reference,
                "digest": desc.get("digest"),
                "is_tag": names.reads_as_tag(reference),
                "csrf": self.sessions.csrf(seed),
            },
        )
        if not request.cookies.get(COOKIE) and request.cookies.get(CSRF_COOKIE) != seed:
            _set_cookie(request, response, CSRF_COOKIE, seed, LIFETIME)
        return response

    async def delete(self, request: Request) -> Response:
        form = await _form(request)
        # From the query, as the cluster layer read it to choose the member (target.py).
        repo = await self._readable(request, _single(request, "repo"))
        reference = _single(request, "reference")
        seed = request.cookies.get(COOKIE) or request.cookies.get(CSRF_COOKIE) or ""
        if not self.sessions.csrf_ok(seed, str(form.get("csrf", ""))):
            raise RegistryError(ErrorCode.DENIED, "the form expired; open it again")
        if not await self.may(request, "delete", repo):
            raise RegistryError(ErrorCode.DENIED)
        store = request.app.state.store
        desc = await store.resolve(repo, reference)
        # The call the API's DELETE /v2/<name>/manifests/<reference> makes.
        await store.delete_manifest(repo, reference)
        if names.reads_as_tag(reference):
            # The tag is gone, the image may remain: back to it, else to the repository.
            try:
                await store.resolve(repo, str(desc.get("digest")))
                return RedirectResponse(_image_url(repo, str(desc.get("digest"))), 303)
            except RegistryError:
                pass
        return RedirectResponse(_repo_url(repo), 303)

    def set_session(
        self, request: Request, response: Response, cookie: str, lifetime: float
    ) -> None:
        _set_cookie(request, response, COOKIE, cookie, lifetime)

    def _csrf_seed(self, request: Request) -> str:
        return (
            request.cookies.get(COOKIE)
            or request.cookies.get(CSRF_COOKIE)
            or (secrets.token_urlsafe(24))
        )

    async def not_found(self, request: Request) -> Response:
        raise RegistryError(ErrorCode.NOT_FOUND)

    # --- login -------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return self.render(
            request, "login.html", {"next": _safe_next(request.query_params.get("next"))}
        )

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        user = str(form.get("username", ""))
        password = str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        try:
            cookie = await self._log_in(user, password, request.app.state.store.meta)
        except DirectoryDown:  # logged where it happened; not the user's fault: no delay
            error = "The LDAP directory did not answer, so the password cannot be checked."
            return self._login_again(request, target, user, error + " Try again soon.", 503)
        if cookie is None:
            if self.auth is not None and self.auth.settings.fail_delay > 0:
                await asyncio.sleep(self.auth.settings.fail_delay)
            return self._login_again(request, target, user, "Wrong username or password.", 401)
        response = RedirectResponse(target, 303)
        _set_cookie(request, response, COOKIE, cookie, LIFETIME)
        return response

    def _login_again(
        self, request: Request, target: str, user: str, error: str, status: int
    ) -> Response:
        context = {"next": target, "error": error, "username": user}
        return self.render(request, "login.html", context, status=status)

    async def _log_in(self, user: str, password: str, meta: MetaStore) -> str | None:
        """The session cookie for these credentials, or None. An htpasswd or LDAP user as
        the API checks Basic (`AuthServices.verify`), their groups noted for their API keys
        as a Basic login notes them (zot's UI logs in with Basic); else, with bearer auth,
        whoever the token server issues a token to. DirectoryDown when the directory did not
        answer and nobody else took the credentials."""
        if not user or self.auth is None:
            return None
        down: DirectoryDown | None = None
        if self.auth.settings.logins:
            try:
                found = await self.auth.verify(user, password)
            except DirectoryDown as exc:
                found, down = None, exc
            if found is not None and self.auth.api_keys is not None:
                await self.auth.api_keys.note_groups(meta, user, found.identity.groups)
            if found is not None and found.by_directory:
                return self.sessions.issue_directory(user)
            if found is not None:
                return self.sessions.issue(user)
        if self.tokens is not None and len(user) <= USER_MAX and len(password) <= PASSWORD_MAX:
            try:
                await self.tokens.login(Credentials(user, password))
                return self.sessions.issue_sealed(user, password)
            except TokenRefused:
                pass
        if down is not None:
            raise down
        return None

    async def logout(self, request: Request) -> Response:
        creds: Credentials | None = request.state.credentials
        if creds is not None and self.tokens is not None:
            self.tokens.forget(creds)
        await self.end_session(request)
        response = RedirectResponse("/ui/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response


async def _home(request: Request) -> Response:
    return RedirectResponse("/", 303)


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: float
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (first of each); the pages' forms are small."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX:
            raise RegistryError(ErrorCode.SIZE_INVALID, "form too large")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def _split_ref(ref: str) -> tuple[str, str]:
    repo, sep, digest = ref.rpartition("@")
    if not sep or not Digest.is_valid(digest):
        raise RegistryError(ErrorCode.DIGEST_INVALID)
    return repo, digest


def _safe_next(value: str | None) -> str:
    """Only a path of this site: a login must not send the browser elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _single(request: Request, key: str) -> str:
    """A query parameter read as the API reads its own (`target.parse_query`: given twice,
    QUERY_INVALID): the cluster layer chose the member by the first `repo`
    (target.page_repository), and Starlette's `get` would answer the last."""
    return parse_query(request.scope["query_string"]).get(key, "")


def _int_param(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key, "")
    # ASCII digits only ("²" passes isdigit, not int), and few enough to be a page size
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        return default
    return int(raw) or default
