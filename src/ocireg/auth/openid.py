"""OpenID Connect's authorization code flow, the relying party's side (`http.auth.openid`).

One `OpenIdClient` per configured provider and worker. `start` finds the provider's
endpoints (discovery, `<issuer>/.well-known/openid-configuration`) and makes the URL to send
the browser to, with a fresh state, nonce and PKCE verifier (S256) for the caller to keep;
`finish` trades the code the provider sent back for tokens, verifies the ID token (its
signature by the provider's published keys, issuer, audience, expiry, nonce), asks the
userinfo endpoint as zot does, and reads the user and the groups from the claims as zot's
`claimMapping` says.

The provider's documents and keys come through `auth.discovery` (aiohttp, bounded waits): a
provider that does not answer is `ProviderDown`, an answer that does not prove the login is
`LoginRefused`. PyJWT (already a dependency, for bearer tokens) checks the ID token; only
asymmetric signatures are taken (a token signed with the client secret would make the secret
a signing key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jwt

from ocireg.auth.discovery import ASYMMETRIC, Issuer, ProviderDown, UnknownKey, decode
from ocireg.errors import ConfigError
from ocireg.settings.openid import OpenIdProvider

__all__ = ["LoginRefused", "OpenIdClient", "OpenIdUser", "ProviderDown", "Start"]

log = logging.getLogger("ocireg.auth")
DISCOVERY_TTL = 3600.0  # seconds the provider's endpoints and keys are kept
LEEWAY = 5  # seconds of clock skew allowed (zot's issuedAtOffset)


class LoginRefused(Exception):
    """The provider's answer does not prove who logged in (a bad code, a token that does
    not verify, no user name in the claims)."""


@dataclass(frozen=True)
class Start:
    url: str  # where to send the browser
    state: str
    nonce: str
    verifier: str  # PKCE: proves at the token endpoint that this login asked for the code


@dataclass(frozen=True)
class OpenIdUser:
    user: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class _Endpoints:
    issuer: str
    authorization: str
    token: str
    userinfo: str
    end_session: str  # RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), or ""
    document: dict[str, Any]  # the discovery document these were read from


class OpenIdClient:
    def __init__(self, provider: OpenIdProvider, redirect_uri: str) -> None:
        self.provider = provider
        self.redirect_uri = redirect_uri
        self.client_id, self.client_secret = client_credentials(provider)
        self._issuer = Issuer(provider.issuer, ttl=DISCOVERY_TTL)
        self._endpoints: _Endpoints | None = None

    async def close(self) -> None:
        await self._issuer.close()

    async def start(self) -> Start:
        endpoints = await self._discover()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.provider.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in endpoints.authorization else "?"
        url = endpoints.authorization + separator + urlencode(query, quote_via=quote)
        return Start(url, state, nonce, verifier)

    async def finish(self, code: str, nonce: str, verifier: str) -> OpenIdUser:
        endpoints = await self._discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"accept": "application/json"}
        if self.client_secret:  # client_secret_basic, each part form-encoded (RFC 6749 2.3.1)
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.client_id
        status, tokens = await self._call("POST", endpoints.token, data=form, headers=headers)
        if status != 200 or not isinstance(tokens.get("id_token"), str):
            raise LoginRefused(f"the token endpoint answered {status}: {tokens.get('error')}")
        claims = await self._verify(tokens["id_token"], nonce, endpoints)
        access = tokens.get("access_token")
        info: dict[str, Any] = {}
        if endpoints.userinfo and isinstance(access, str):
            info = await self._userinfo(endpoints.userinfo, access, claims)
        return self.user_of(claims, info)

    async def end_session_url(self, post_logout_redirect: str) -> str:
        """Where to send the browser to log out at the provider too, as zot's logout answers
        it: the provider's `end_session_endpoint` with `client_id` and
        `post_logout_redirect_uri` (no `id_token_hint`), the query sorted by name as Go
        encodes it. "" when the provider has none, an unusable one, or does not answer."""
        try:
            endpoint = (await self._discover()).end_session
        except ProviderDown as exc:
            log.warning("openid provider unavailable at logout", extra={"error": str(exc)})
            return ""
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return ""
        ours = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect}
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
        query = sorted([*kept, *ours.items()], key=lambda pair: pair[0])
        return urlunsplit(parts._replace(query=urlencode(query)))

    # --- the ID token ------------------------------------------------------------------------

    async def _verify(self, token: str, nonce: str, endpoints: _Endpoints) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise LoginRefused(f"the ID token is not a JWT: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC:
            raise LoginRefused(f"the ID token is signed with {algorithm!r}")
        try:
            keys = await self._issuer.keys(header.get("kid"), algorithm)
        except UnknownKey as exc:
            raise LoginRefused(str(exc)) from None
        try:
            claims = decode(
                token,
                keys,
                algorithm,
                audience=self.client_id,
                issuer=endpoints.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise LoginRefused(f"the ID token does not verify: {exc}") from None
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
            claims["nonce"].encode(),
            nonce.encode(),  # bytes: a str must be ASCII there
        ):
            raise LoginRefused("the ID token's nonce is not this login's")
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise LoginRefused("the ID token was issued to another party")
        return claims

    async def _userinfo(self, url: str, access: str, claims: dict[str, Any]) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {access}", "accept": "application/json"}
        status, info = await self._call("GET", url, headers=headers)
        if status != 200:
            raise LoginRefused(f"the userinfo endpoint answered {status}")
        if info.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2
            raise LoginRefused("the userinfo is about another user")
        return info

    def user_of(self, id_claims: dict[str, Any], info: dict[str, Any]) -> OpenIdUser:
        """The user and groups as zot reads them from the ID token's claims and the userinfo
        answer (`info`, empty without one): the configured username claim, the userinfo's
        first (falling back to `email` when it is missing); the groups claim, a list or one
        string, from both, joined."""
        claims = {**id_claims, **info}
        user = claims.get(self.provider.username_claim)
        if not isinstance(user, str) or not user:
            user = claims.get("email")
        if not isinstance(user, str) or not user:
            raise LoginRefused(f"no {self.provider.username_claim!r} claim to name the user")
        groups = {g for source in (id_claims, info) for g in self._groups(source)}
        return OpenIdUser(user, tuple(sorted(groups)))

    def _groups(self, claims: dict[str, Any]) -> list[str]:
        raw = claims.get(self.provider.groups_claim)
        values = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
        return [str(g) for g in values if g is not None and str(g)]

    # --- talking to the provider -------------------------------------------------------------

    async def _discover(self) -> _Endpoints:
        doc = await self._issuer.document()
        known = self._endpoints
        if known is not None and known.document is doc:
            return known
        try:
            endpoints = _Endpoints(
                issuer=str(doc["issuer"]),
                authorization=str(doc["authorization_endpoint"]),
                token=str(doc["token_endpoint"]),
                userinfo=str(doc.get("userinfo_endpoint") or ""),
                end_session=str(doc.get("end_session_endpoint") or ""),
                document=doc,
            )
        except KeyError as exc:
            raise ProviderDown(f"discovery lacks {exc}") from None
        self._endpoints = endpoints
        return endpoints

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        return await self._issuer.call(method, url, **kwargs)


def client_credentials(provider: OpenIdProvider) -> tuple[str, str]:
    """The client id and secret: the config's, else the credentials file's (zot's: a JSON
    map with clientid and clientsecret). ConfigError when the file is unusable."""
    if provider.credentials_file is None:
        return provider.client_id, provider.client_secret
    where = f"http.auth.openid.providers.{provider.name}.credentialsFile"
    try:
        data = json.loads(Path(provider.credentials_file).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(where, f"cannot read {provider.credentials_file}: {exc}") from None
    fields = {str(k).lower(): v for k, v in data.items()} if isinstance(data, dict) else {}
    client_id = fields.get("clientid") or provider.client_id
    secret = fields.get("clientsecret") or provider.client_secret
    if not isinstance(client_id, str) or not client_id or not isinstance(secret, str):
        raise ConfigError(where, "expected a JSON map with clientid (and clientsecret)")
    return client_id, secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
