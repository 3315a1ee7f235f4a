"""zot's token exchange, `GET|POST /zot/auth/token` (routed with `http.auth.bearer.oidc`):
for clients that only know registry logins (`docker login -u any -p <ID token>`, a
Kubernetes pull secret), the Docker token flow with the workload's ID token as password.

The challenge's `realm` points here; the client comes with the token as the Basic password,
or in a form field (`password`, `id_token`, `access_token`, `refresh_token`, `token`); the
answer, when a trusted issuer vouches for it, is the same token as `token` and
`access_token`, with `expires_in` and `issued_at` from its claims, which the client then
sends as its bearer token. Anything else: 401 with a Basic challenge, as zot answers.
zot passes requests whose token no trusted issuer claims to `upstreamTokenEndpoint`; ocireg
does not implement that key (it is warned about), so those are refused too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.api.common import limited_body
from ocireg.auth.basic import basic_pair
from ocireg.auth.core import AuthServices
from ocireg.auth.grants import TokenError
from ocireg.errors import ErrorCode, RegistryError
from ocireg.target import Endpoint

MAX_BODY = 64 << 10  # zot's MaxTokenRequestBodySize
_FIELDS = ("password", "id_token", "access_token", "refresh_token", "token")
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def token_routes(
    auth: AuthServices | None,
) -> dict[tuple[Endpoint, str], Callable[[Request], Awaitable[Response]]]:
    """The routes to add to the API's table: none without workload identity (404 then)."""
    if auth is None or auth.workload is None or auth.settings.bearer is None:
        return {}
    workload = auth.workload
    realm = auth.settings.bearer.realm or auth.settings.realm

    async def exchange(request: Request) -> Response:
        """GET|POST /zot/auth/token."""
        if len(request.headers.getlist("authorization")) > 1:
            raise RegistryError(ErrorCode.AUTHORIZATION_REPEATED, headers=_NO_STORE)
        for credential in await _credentials(request):
            if not workload.owns(credential):
                continue
            try:
                identity = await workload.verify(credential)
            except TokenError:
                continue  # another credential of the request may do
            return JSONResponse(_answer(credential, identity.claims), headers=_NO_STORE)
        raise RegistryError(
            ErrorCode.UNAUTHORIZED,
            headers={**_NO_STORE, "www-authenticate": f'Basic realm="{realm}"'},
        )

    return {(Endpoint.TOKEN, "GET"): exchange, (Endpoint.TOKEN, "POST"): exchange}


async def _credentials(request: Request) -> list[str]:
    """The candidates, each once and in zot's order: the Basic password, then the form's."""
    found: list[str] = []
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() == "basic" and (pair := basic_pair(encoded)) is not None:
        found.append(pair[1])
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        found += await _form(request)
    return list(dict.fromkeys(c.strip() for c in found if c.strip()))


async def _form(request: Request) -> list[str]:
    async with limited_body(request, MAX_BODY, ErrorCode.TOKEN_REQUEST_TOO_LARGE) as body:
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise RegistryError(
                ErrorCode.TOKEN_REQUEST_INVALID, "invalid token request form body"
            ) from None
    return [value for field in _FIELDS for key, value in pairs if key == field]


def _answer(token: str, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The exchange's answer for `token`, whose `claims` were verified just now."""
    exp, iat = claims.get("exp"), claims.get("iat")
    # exp: verified finite; iat is not checked, and any number the issuer signed is taken
    expires_in = max(int(exp - time.time()), 0) if isinstance(exp, int | float) else 0
    issued_at = ""
    if isinstance(iat, int | float):
        with contextlib.suppress(ValueError, OverflowError, OSError):  # NaN, past year 9999
            issued_at = datetime.fromtimestamp(int(iat), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at}
