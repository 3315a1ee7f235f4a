"""zot's OpenID Connect login routes (`http.auth.openid`), served with the web pages.

- `GET /zot/auth/login?provider=<name>&callback_ui=<where to go after>`: to the provider.
  The state, nonce and PKCE verifier go with the browser in a sealed cookie, scoped to the
  callback's path and SameSite=Lax (the provider's redirect back is a cross-site
  navigation, which a Strict cookie would not follow).
- `GET /zot/auth/callback/<name>`: the code traded and the ID token verified
  (`ocireg.auth.openid`), then an OpenID session cookie (`ocireg.ui.session`) with the
  token's groups. The answer is a page that moves on to `callback_ui` by itself: a redirect
  would keep the navigation cross-site, and the browser would not send the new
  SameSite=Strict session cookie with it.
- `POST /zot/auth/logout` (zot's, answered as zot: `{"endSessionUrl": ...}` for an OpenID
  session whose provider publishes an `end_session_endpoint`, else `{}`), and GET for a
  link: the session cookie is dropped. The provider sends the browser back to
  `<origin>/ui/login` after its logout (zot: `/login`, its UI's page).

The URL the provider sends the browser back to is zot's: `<http.externalUrl>/zot/auth/
callback/<name>`, else built from `http.address`, `http.port` and `http.tls`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ocireg.auth.openid import LoginRefused, OpenIdClient, ProviderDown
from ocireg.config import Config
from ocireg.identity import Identity
from ocireg.settings.openid import OpenIdSettings
from ocireg.ui.session import COOKIE, OPENID_LIFETIME

if TYPE_CHECKING:
    from ocireg.ui.pages import Pages

log = logging.getLogger("ocireg.ui")
LOGIN_COOKIE = "ocireg_openid_login"
CALLBACK_PATH = "/zot/auth/callback"
Handler = Callable[[Request], Awaitable[Response]]
LOGIN_LIFETIME = 600.0  # seconds to log in at the provider (zot allows 120: tight for a 2FA)
COOKIE_MAX = 3800  # bytes: browsers drop cookies over 4 KiB (a user in very many groups)


class OpenIdLogins:
    def __init__(self, pages: Pages, settings: OpenIdSettings, config: Config) -> None:
        self.pages = pages
        self.settings = settings
        origin = settings.external_url or _origin(config)
        self.after_logout = f"{origin.rstrip('/')}/ui/login"
        self.origins = tuple(o for o in (*settings.callback_origins, origin) if o)
        self.clients = {
            name: OpenIdClient(provider, f"{origin}{CALLBACK_PATH}/{name}")
            for name, provider in settings.providers.items()
        }

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()

    def routes(self, wrap: Callable[[Handler], Handler]) -> list[BaseRoute]:
        """The routes, each handler wrapped as the pages wrap theirs (`Pages._page`)."""
        return [
            Route("/zot/auth/login", wrap(self.login), methods=["GET"]),
            Route(CALLBACK_PATH + "/{provider}", wrap(self.callback), methods=["GET"]),
            Route("/zot/auth/logout", wrap(self.logout), methods=["GET", "POST"]),
        ]

    async def login(self, request: Request) -> Response:
        client = self.clients.get(request.query_params.get("provider", ""))
        if client is None:
            return self._failed(request, 400, "There is no such login provider here.")
        target = safe_callback(request.query_params.get("callback_ui", ""), self.origins)
        try:
            start = await client.start()
        except ProviderDown as exc:
            return self._down(request, client, exc)
        state = {"s": start.state, "n": start.nonce, "v": start.verifier, "p": client.provider.name}
        response = RedirectResponse(start.url, 302)
        response.set_cookie(
            LOGIN_COOKIE,
            self.pages.sessions.seal(state | {"c": target}, LOGIN_LIFETIME),
            max_age=int(LOGIN_LIFETIME),
            path=CALLBACK_PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    async def callback(self, request: Request) -> Response:
        name = request.path_params["provider"]
        client = self.clients.get(name)
        if client is None:
            return self._failed(request, 404, "There is no such login provider here.")
        login = self.pages.sessions.unseal(request.cookies.get(LOGIN_COOKIE, ""))
        if login is None or login.get("p") != name:
            return self._failed(request, 400, "This login was not started here, or took too long.")
        query = request.query_params
        if "error" in query:  # the user said no, or the provider would not
            return self._failed(request, 403, "The provider did not log you in.")
        # As bytes: compare_digest raises TypeError on a str that is not ASCII (?state=%C3%A9)
        state = str(query.get("state", "")).encode()
        if not hmac.compare_digest(state, str(login.get("s", "")).encode()):
            return self._failed(request, 400, "This answer is not for this login.")
        try:
            found = await client.finish(query.get("code", ""), str(login["n"]), str(login["v"]))
        except LoginRefused as exc:
            log.warning("openid login refused", extra={"provider": name, "error": str(exc)})
            return self._failed(request, 403, "The provider's answer could not be verified.")
        except ProviderDown as exc:
            return self._down(request, client, exc)
        cookie = self.pages.sessions.issue_openid(found.user, found.groups, name)
        if len(cookie) > COOKIE_MAX:
            return self._failed(request, 400, "You are in too many groups for a session.")
        auth = self.pages.auth
        if auth is not None and auth.api_keys is not None:  # the groups the user's keys act with
            groups = auth.groups_of(found.user, found.groups)
            await auth.api_keys.note_groups(request.app.state.store.meta, found.user, groups)
        target = str(login.get("c") or "/")
        # The page names the user just logged in, not whoever the request's cookie was.
        request.state.identity = Identity(user=found.user, groups=found.groups, method="session")
        response = self.pages.render(request, "signed_in.html", {"target": target})
        response.delete_cookie(LOGIN_COOKIE, path=CALLBACK_PATH)
        self.pages.set_session(request, response, cookie, OPENID_LIFETIME)
        return response

    async def logout(self, request: Request) -> Response:
        response: Response
        await self.pages.end_session(request)
        if request.method == "POST":
            end = await self._end_session_url(request)
            response = JSONResponse({"endSessionUrl": end} if end else {})  # zot's LogoutResponse
        else:
            response = RedirectResponse("/ui/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def _end_session_url(self, request: Request) -> str:
        session = self.pages.sessions.verify(request.cookies.get(COOKIE))
        client = self.clients.get(session.provider) if session is not None else None
        return "" if client is None else await client.end_session_url(self.after_logout)

    def _failed(self, request: Request, status: int, message: str) -> Response:
        titles = {400: "Login failed", 403: "Login refused", 404: "Not found"}
        context = {"title": titles.get(status, "Login failed"), "message": message}
        response = self.pages.render(request, "error.html", context, status=status)
        response.delete_cookie(LOGIN_COOKIE, path=CALLBACK_PATH)
        return response

    def _down(self, request: Request, client: OpenIdClient, exc: ProviderDown) -> Response:
        log.warning("openid provider unavailable", extra={"error": str(exc)})
        message = f"{client.provider.title} did not answer, so you cannot log in. Try again soon."
        context = {"title": "Unavailable", "message": message}
        return self.pages.render(request, "error.html", context, status=503)


def safe_callback(value: str, origins: tuple[str, ...]) -> str:
    """Where to go after the login, as zot allows it: a path of this site, or a URL of one
    of `origins` (callbackAllowOrigins, externalUrl); anything else is `/`."""
    # Browsers drop tabs and newlines from URLs ("/\t/evil" is "//evil") and read a
    # backslash as a slash: none of them is taken, nor any other control or space.
    if not value or any(ord(c) <= 0x20 or c in "\\\x7f" for c in value):
        return "/"
    if value.startswith("//"):
        return "/"
    try:
        parts = urlsplit(value)
    except ValueError:  # not a URL: an unclosed "[" (urlsplit's "Invalid IPv6 URL")
        return "/"
    if not parts.scheme and not parts.netloc:
        return value if value.startswith("/") else "/"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "/"
    try:
        allowed = {_canonical(o) for o in origins}
        return value if _canonical(f"{parts.scheme}://{parts.netloc}") in allowed else "/"
    except ValueError:  # a port that is not one
        return "/"


def _canonical(origin: str) -> str:
    parts = urlsplit(origin.rstrip("/"))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _origin(config: Config) -> str:
    """zot's origin without externalUrl: the configured address and port."""
    scheme = "https" if config.http.tls is not None else "http"
    host = config.http.address
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{scheme}://{host}:{config.http.port}"
