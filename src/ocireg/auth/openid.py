"""OpenID Connect's authorization code flow, the relying party's side (`http.auth.openid`).

One `OpenIdClient` per configured provider and worker. `start` finds the provider's
endpoints (discovery, `<issuer>/.well-known/openid-configuration`) and makes the URL to send
the browser to, with a fresh state, nonce and PKCE verifier (S256) for the caller to keep;
`finish` trades the code the provider sent back for tokens, verifies the ID token (its
signature by the provider's published keys, issuer, audience, expiry, nonce), asks the
userinfo endpoint as zot does, and reads the user and the groups from the claims as zot's
`claimMapping` says.

HTTP goes through aiohttp, with bounded waits: a provider that does not answer is
`ProviderDown`, an answer that does not prove the login is `LoginRefused`. PyJWT (already a
dependency, for bearer tokens) checks the ID token; only asymmetric signatures are taken
(a token signed with the client secret would make the secret a signing key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
import jwt

from ocireg.errors import ConfigError
from ocireg.settings.openid import OpenIdProvider

log = logging.getLogger("ocireg.auth")
TIMEOUT = 10.0  # seconds for one exchange with the provider
DISCOVERY_TTL = 3600.0  # seconds the provider's endpoints and keys are kept
LEEWAY = 5  # seconds of clock skew allowed (zot's issuedAtOffset)
MAX_ANSWER = 1 << 20  # bytes of a provider's JSON answer
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class ProviderDown(Exception):
    """The provider did not answer, or not as a provider answers."""


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
    jwks: str
    userinfo: str
    end_session: str  # RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), or ""
    fetched: float


class OpenIdClient:
    def __init__(self, provider: OpenIdProvider, redirect_uri: str) -> None:
        self.provider = provider
        self.redirect_uri = redirect_uri
        self.client_id, self.client_secret = client_credentials(provider)
        self._endpoints: _Endpoints | None = None
        self._keys: dict[str, Any] = {}  # the provider's JWKS, as published
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

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
        if algorithm not in _ALGORITHMS:
            raise LoginRefused(f"the ID token is signed with {algorithm!r}")
        key = await self._key(header.get("kid"), algorithm, endpoints)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
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

    async def _key(self, kid: Any, algorithm: str, endpoints: _Endpoints) -> Any:
        """The public key the token names, from the provider's JWKS; fetched again once
        when it is not there (the provider rotated its keys)."""
        for fresh in (False, True):
            if fresh or not self._keys:
                status, self._keys = await self._call("GET", endpoints.jwks)
                if status != 200:
                    raise ProviderDown(f"the JWKS endpoint answered {status}")
            keys = [k for k in self._keys.get("keys") or [] if isinstance(k, dict)]
            found = [k for k in keys if kid is None or k.get("kid") == kid]
            if len(found) == 1 or (found and kid is not None):
                try:
                    return jwt.PyJWK(found[0], algorithm=algorithm).key
                except jwt.PyJWTError as exc:
                    raise LoginRefused(f"the provider's key is unusable: {exc}") from None
        raise LoginRefused(f"no key {kid!r} in the provider's JWKS")

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
        known = self._endpoints
        if known is not None and time.monotonic() - known.fetched < DISCOVERY_TTL:
            return known
        url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, doc = await self._call("GET", url)
        if status != 200:
            raise ProviderDown(f"discovery answered {status}")
        # The document must be the configured issuer's (OpenID Connect Discovery 4.3).
        if str(doc.get("issuer", "")).rstrip("/") != self.provider.issuer.rstrip("/"):
            raise ProviderDown(f"discovery names another issuer: {doc.get('issuer')!r}")
        try:
            endpoints = _Endpoints(
                issuer=str(doc["issuer"]),
                authorization=str(doc["authorization_endpoint"]),
                token=str(doc["token_endpoint"]),
                jwks=str(doc["jwks_uri"]),
                userinfo=str(doc.get("userinfo_endpoint") or ""),
                end_session=str(doc.get("end_session_endpoint") or ""),
                fetched=time.monotonic(),
            )
        except KeyError as exc:
            raise ProviderDown(f"discovery lacks {exc}") from None
        self._endpoints, self._keys = endpoints, {}
        return endpoints

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON object of one exchange; ProviderDown when there is none."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        try:
            async with self._http.request(method, url, allow_redirects=False, **kwargs) as r:
                # read(n) answers what has come so far: read on to the end, or past the limit
                body = b""
                while len(body) <= MAX_ANSWER:
                    piece = await r.content.read(MAX_ANSWER + 1 - len(body))
                    if not piece:
                        break
                    body += piece
                status = r.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise ProviderDown(f"{url}: {exc or type(exc).__name__}") from None
        if status >= 500:
            raise ProviderDown(f"{url} answered {status}")
        try:
            data = json.loads(body) if len(body) <= MAX_ANSWER else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if status == 200:
                raise ProviderDown(f"{url}: the answer is not a JSON object")
            data = {}
        return status, data


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
