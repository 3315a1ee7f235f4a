"""The pages' token client for `http.auth.bearer`: the token server is the policy.

The API never sees a password with bearer auth: clients fetch tokens themselves. A browser
cannot, so the pages run the Docker token flow for their user: `GET <realm>?service=...&
scope=...` with the user's credentials as Basic (sealed in the session cookie,
`ocireg.ui.session`), verify the token with the API's own verifier (the `cert` of
`http.auth.bearer`), and read its `access` claim with the API's `grants`. A page asks for
exactly the scopes it needs (`repository:<name>:pull` for each name it would show,
`repository:<name>:delete` for a delete), several in one request as the protocol allows.

Each answer is cached in the worker, per credentials and scope, until shortly before the
token expires (bounded, least recently used out first), so paging through a list or coming
back to a page costs no request; a user whose grants change sees the change within one
token lifetime.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
import jwt

from ocireg.auth.bearer import BearerVerifier
from ocireg.auth.grants import TokenError, grants
from ocireg.identity import Identity

log = logging.getLogger("ocireg.ui")
TIMEOUT = 5.0  # seconds for one token request: a page waits for it
CACHE_MAX = 50_000  # cached (credentials, scope) answers in one worker
QUERY_BUDGET = 4000  # characters of scopes in one token URL (servers cap URL lengths)
PARALLEL = 4  # token requests in flight for one page
# An answer is dropped this long before its token expires (at most; a fifth of a short
# lifetime), so that a decision never outlives the token it came from.
MARGIN = 30.0
ACTIONS = {"read": "pull", "delete": "delete"}  # the pages' actions, as token scopes


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


class TokenRefused(Exception):
    """The token server refused the credentials (a wrong password, a removed user)."""


class TokenServerDown(Exception):
    """The token server did not answer, or answered with something unusable."""


class TokenClient:
    """One per worker process; its HTTP session is made on first use."""

    def __init__(self, verifier: BearerVerifier) -> None:
        self.verifier = verifier
        # (credentials' keyed hash, scope) -> (granted, monotonic time it is good until)
        self.cache: OrderedDict[tuple[bytes, str], tuple[bool, float]] = OrderedDict()
        self._salt = secrets.token_bytes(16)  # keyed: the cache holds no plain password hash
        self._session: aiohttp.ClientSession | None = None

    async def login(self, creds: Credentials) -> Identity:
        """Check credentials with the token server: a token with no scope, which it issues
        only to a user it authenticated (a token without a subject is anonymous: refused)."""
        identity, _ = await self._fetch(creds, [])
        if identity.anonymous:
            raise TokenRefused("the token server issued an anonymous token")
        return identity

    async def allowed(self, creds: Credentials, action: str, repos: list[str]) -> list[str]:
        """The repositories, in order, on which a token for `creds` grants `action`."""
        wanted = ACTIONS[action]
        key = self._key(creds)
        now = time.monotonic()
        decided: dict[str, bool] = {}
        for repo in repos:
            hit = self.cache.get((key, _scope(repo, wanted)))
            if hit is not None and hit[1] > now:
                self.cache.move_to_end((key, _scope(repo, wanted)))
                decided[repo] = hit[0]
        missing = sorted(set(repos) - decided.keys())
        gate = asyncio.Semaphore(PARALLEL)

        async def ask(batch: list[str]) -> None:
            async with gate:
                identity, lifetime = await self._fetch(creds, [_scope(r, wanted) for r in batch])
            expires = time.monotonic() + lifetime - min(MARGIN, lifetime / 5)
            for repo in batch:
                decided[repo] = grants(identity.access, "repository", repo, wanted)
                if lifetime > 0:
                    self.cache[(key, _scope(repo, wanted))] = (decided[repo], expires)
                    self.cache.move_to_end((key, _scope(repo, wanted)))
            while len(self.cache) > CACHE_MAX:
                self.cache.popitem(last=False)

        await asyncio.gather(*(ask(batch) for batch in _batches(missing)))
        return [repo for repo in repos if decided[repo]]

    def forget(self, creds: Credentials) -> None:
        """At logout: this worker's answers for these credentials."""
        key = self._key(creds)
        for cached in [k for k in self.cache if k[0] == key]:
            del self.cache[cached]

    def _key(self, creds: Credentials) -> bytes:
        data = f"{creds.user}\0{creds.password}".encode()
        return hashlib.blake2b(data, key=self._salt, digest_size=16).digest()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, creds: Credentials, scopes: list[str]) -> tuple[Identity, float]:
        """A verified token for the scopes, and the seconds it stays valid."""
        params = [("service", self.verifier.service)] if self.verifier.service else []
        params.append(("account", creds.user))
        params += [("scope", scope) for scope in scopes]
        auth = aiohttp.BasicAuth(creds.user, creds.password)
        try:
            async with self._client().get(self.verifier.realm, params=params, auth=auth) as resp:
                if resp.status in (401, 403):
                    raise TokenRefused(f"the token server answered {resp.status}")
                if resp.status != 200:
                    raise TokenServerDown(f"the token server answered {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TokenServerDown(f"the token server did not answer: {exc!r}") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise TokenServerDown("the token server's answer holds no token")
        try:
            identity = self.verifier.verify(token)
        except TokenError as exc:
            # Not the user's fault: the token server and http.auth.bearer.cert disagree.
            log.warning("token server's token refused", extra={"error": str(exc)})
            raise TokenServerDown(f"the token server's token was refused: {exc}") from None
        # Verified just above: read only its expiry.
        expiry = jwt.decode(token, options={"verify_signature": False}).get("exp")
        lifetime = float(expiry) - time.time() if isinstance(expiry, int | float) else 0.0
        return identity, max(lifetime, 0.0)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls = (
                ssl.create_default_context() if self.verifier.realm.startswith("https:") else False
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=16, ssl=tls),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


def _scope(repo: str, action: str) -> str:
    return f"repository:{repo}:{action}"


def _batches(repos: list[str]) -> list[list[str]]:
    """The repositories in groups whose scopes keep each token URL short."""
    batches: list[list[str]] = []
    used = QUERY_BUDGET
    for repo in repos:
        if used + len(repo) > QUERY_BUDGET:
            batches.append([])
            used = 0
        batches[-1].append(repo)
        used += len(repo) + 30  # "&scope=repository:" and ":delete", escaped
    return batches
