"""One OpenID issuer as a token's verifier sees it: its discovery document
(`<issuer>/.well-known/openid-configuration`) and the public keys it publishes (JWKS).
Shared by the web login (`auth.openid`) and workload identity (`auth.workload`).

Every exchange has a bounded wait, and a provider that failed is not asked again for
`DOWN_BACKOFF` seconds: while it is down, requests are refused at once instead of each
waiting out the timeout. One fetch at a time per issuer (a burst of requests waits for one
answer). A key id the cached JWKS lacks (the provider rotated its keys) fetches it again,
at most once per `REFRESH_INTERVAL`, so tokens naming made-up key ids cannot make the
registry hammer the provider.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import aiohttp
import jwt

TIMEOUT = 10.0  # seconds for one exchange with the provider
DOWN_BACKOFF = 5.0  # seconds a provider that failed is taken as down without asking
REFRESH_INTERVAL = 10.0  # seconds between two JWKS fetches for an unknown key id
MAX_ANSWER = 1 << 20  # bytes of a provider's JSON answer
# Signatures by a published public key only: an HMAC "key" would be a shared secret.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class ProviderDown(Exception):
    """The provider did not answer, or not as a provider answers."""


class UnknownKey(Exception):
    """The token names a key the provider does not publish, or one that cannot be used."""


class Issuer:
    def __init__(
        self,
        issuer: str,
        *,
        ttl: float,
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        check_issuer: bool = True,
    ) -> None:
        """`ttl`: seconds the document and keys are kept; `check_issuer`: the document must
        name `issuer` itself (OpenID Connect Discovery 4.3; zot's skipIssuerVerification
        turns it off)."""
        self.issuer = issuer
        self.ttl = ttl
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.check_issuer = check_issuer
        self._document: dict[str, Any] | None = None
        self._fetched = 0.0  # time.monotonic() of the document
        self._keys: list[dict[str, Any]] | None = None
        self._keys_fetched = 0.0
        self._down_until = 0.0
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def document(self) -> dict[str, Any]:
        """The discovery document (with at least `issuer` and `jwks_uri`)."""
        known = self._document
        if known is not None and time.monotonic() - self._fetched < self.ttl:
            return known
        async with self._lock:
            known = self._document
            if known is not None and time.monotonic() - self._fetched < self.ttl:
                return known  # fetched while this request waited for the lock
            doc: dict[str, Any] = await self._guarded(self._discover)
            self._document, self._fetched, self._keys = doc, time.monotonic(), None
            return doc

    async def keys(self, kid: Any, algorithm: str) -> list[Any]:
        """The public keys that may have signed a token naming `kid` with `algorithm`: the
        one of that id, or, when the token names none, every published key usable for the
        algorithm (go-oidc tries them all too). UnknownKey when there is none."""
        doc = await self.document()
        if self._keys is None:
            await self._fetch_keys(doc, None)
        for look_again in (False, True):
            if look_again and not await self._fetch_keys(doc, self._keys_fetched):
                break
            found = [k for k in self._keys or [] if kid is None or k.get("kid") == kid]
            usable = []
            for published in found:
                try:
                    usable.append(jwt.PyJWK(published, algorithm=algorithm).key)
                except jwt.PyJWTError as exc:
                    if kid is not None:  # the very key the token names
                        raise UnknownKey(f"the provider's key is unusable: {exc}") from None
            if usable:
                return usable
        raise UnknownKey(f"no key {kid!r} in the provider's JWKS")

    async def call(self, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON object of one exchange; ProviderDown when there is none."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(ssl=self.ssl_context or True),
            )
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
        except (ValueError, RecursionError):  # a megabyte of `[` nests past Python's stack
            data = None
        if not isinstance(data, dict):
            if status == 200:
                raise ProviderDown(f"{url}: the answer is not a JSON object")
            data = {}
        return status, data

    # --- inside ------------------------------------------------------------------------------

    async def _fetch_keys(self, doc: dict[str, Any], seen: float | None) -> bool:
        """Fetch the JWKS: the first time (`seen` None), or again because the keys fetched
        at `seen` lacked the token's key. True when there are other keys to look in (this
        fetch's, or another request's meanwhile); False when the keys are too recent to
        fetch again."""
        async with self._lock:
            if seen is None and self._keys is not None:
                return True  # fetched while this request waited for the lock
            if seen is not None and self._keys_fetched != seen:
                return True
            if seen is not None and time.monotonic() - seen < REFRESH_INTERVAL:
                return False

            async def fetch() -> list[dict[str, Any]]:
                status, jwks = await self.call("GET", str(doc["jwks_uri"]))
                if status != 200:
                    raise ProviderDown(f"the JWKS endpoint answered {status}")
                keys = jwks.get("keys")
                if not isinstance(keys, list):
                    raise ProviderDown("the JWKS has no list of 'keys'")
                return [k for k in keys if isinstance(k, dict)]

            self._keys = await self._guarded(fetch)
            self._keys_fetched = time.monotonic()
            return True

    async def _discover(self) -> dict[str, Any]:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, doc = await self.call("GET", url)
        if status != 200:
            raise ProviderDown(f"discovery answered {status}")
        named = str(doc.get("issuer", ""))
        if self.check_issuer and named.rstrip("/") != self.issuer.rstrip("/"):
            raise ProviderDown(f"discovery names another issuer: {doc.get('issuer')!r}")
        if not isinstance(doc.get("jwks_uri"), str):
            raise ProviderDown("discovery lacks 'jwks_uri'")
        algorithms = doc.get("id_token_signing_alg_values_supported")
        if algorithms is not None and not (
            isinstance(algorithms, list) and all(isinstance(a, str) for a in algorithms)
        ):  # go-oidc cannot read such a document either
            raise ProviderDown("discovery's 'id_token_signing_alg_values_supported' is not a list")
        return doc

    async def _guarded(self, fetch: Any) -> Any:
        """`fetch()`, unless the provider failed moments ago; a failure is remembered."""
        if time.monotonic() < self._down_until:
            raise ProviderDown(f"{self.issuer} did not answer moments ago")
        try:
            return await fetch()
        except ProviderDown:
            self._down_until = time.monotonic() + DOWN_BACKOFF
            raise


def decode(token: str, keys: list[Any], algorithm: str, **options: Any) -> dict[str, Any]:
    """The token's claims, verified by the first of `keys` whose signature it bears; the
    checks of `options` (PyJWT's) apply. PyJWTError when none verifies it."""
    for key in keys[:-1]:
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[algorithm], **options)
            return claims
        except jwt.InvalidSignatureError:
            continue  # another key of the issuer's may have signed it
    last: dict[str, Any] = jwt.decode(token, keys[-1], algorithms=[algorithm], **options)
    return last
