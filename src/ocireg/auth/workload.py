"""Workload identity (`http.auth.bearer.oidc`): an ID token from a trusted issuer, sent as
`Authorization: Bearer <jwt>`, is the credential. Who it names is then authorized by
`http.accessControl`, as a password user would be (the token carries no grants).

The issuers are tried in order, as zot tries them; one that the token does not name (its
unverified `iss`) is skipped without asking its provider anything. A token is taken when:
its header names an asymmetric algorithm the issuer's discovery document lists (RS256 when
it lists none, as zot's go-oidc), the issuer publishes the key it names, the signature
verifies, `iss` is the issuer's (unless `skipIssuerVerification`), `exp` is present and
not past (no leeway, as zot), `nbf` is not more than a minute ahead, `aud` names one of the
`audiences`, and the `claimMapping` gives a non-empty user name.

A verified token's identity is kept (per worker) until it expires or for `IDENTITY_TTL`,
whichever comes first: a push's dozens of requests cost one verification. A key the issuer
withdrew thus keeps working here for at most two minutes: a token verified by keys fetched
up to `REFRESH` ago is then remembered for `IDENTITY_TTL` more.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import ssl
import time
from typing import Any

import jwt

from ocireg.auth.claims import ClaimMapper, ClaimsRefused
from ocireg.auth.discovery import ASYMMETRIC, Issuer, ProviderDown, UnknownKey, decode
from ocireg.auth.grants import TokenError
from ocireg.errors import ConfigError
from ocireg.identity import Identity
from ocireg.settings.bearer_oidc import OidcIssuer

log = logging.getLogger("ocireg.auth")
REFRESH = 60.0  # seconds the discovery document and keys are kept (zot's refresh interval)
TIMEOUT = 5.0  # seconds for one exchange with a provider: a request never waits longer
NBF_LEEWAY = 60  # seconds a token may be "not before" now (go-oidc's)
IDENTITY_TTL = 60.0  # seconds a verified token's identity is kept
_CACHE_SIZE = 4096  # tokens kept per worker


class WorkloadIdentity:
    """The issuers of `http.auth.bearer.oidc`, built once per worker."""

    def __init__(self, issuers: tuple[OidcIssuer, ...], where: str = "http.auth.bearer.oidc"):
        self.issuers = [_Trusted(s, f"{where}[{i}]") for i, s in enumerate(issuers)]
        self._known: dict[str, tuple[float, Identity]] = {}  # token -> (until, identity)

    async def close(self) -> None:
        for issuer in self.issuers:
            await issuer.provider.close()

    async def verify(self, token: str) -> Identity:
        """The identity the token proves; TokenError with the reason when it proves none."""
        now = time.time()
        known = self._known.get(token)
        if known is not None and now < known[0]:
            return known[1]
        claims = _unverified(token)
        reasons = []
        for issuer in self.issuers:
            if not issuer.may_have_issued(claims):
                continue
            try:
                exp, identity = await issuer.verify(token)
            except TokenError as exc:
                reasons.append(str(exc))
                continue
            self._remember(token, min(exp, now + IDENTITY_TTL), identity)
            return identity
        raise TokenError("; ".join(reasons) or "token not issued by a trusted issuer")

    def owns(self, token: str) -> bool:
        """Whether the token, as it states itself, is for a trusted issuer and one of its
        audiences (zot's test for a token its exchange must not pass on elsewhere)."""
        claims = _unverified(token)
        audience = claims.get("aud")
        named = [audience] if isinstance(audience, str) else audience
        if not isinstance(named, list):
            return False
        strings = {a for a in named if isinstance(a, str)}  # zot's: others are passed over
        return any(
            claims.get("iss") == t.settings.issuer and strings & set(t.settings.audiences)
            for t in self.issuers
        )

    def _remember(self, token: str, until: float, identity: Identity) -> None:
        if len(self._known) >= _CACHE_SIZE:
            now = time.time()
            self._known = {t: v for t, v in self._known.items() if v[0] > now}
            while len(self._known) >= _CACHE_SIZE:  # all live: drop the oldest
                del self._known[next(iter(self._known))]
        self._known[token] = (until, identity)


class _Trusted:
    """One trusted issuer: its settings, its provider's keys, its claim mapping."""

    def __init__(self, settings: OidcIssuer, where: str) -> None:
        self.settings = settings
        self.mapper = ClaimMapper(settings.claim_mapping, where)
        self.provider = Issuer(
            settings.issuer, ttl=REFRESH, timeout=TIMEOUT, ssl_context=_ssl(settings, where)
        )

    def may_have_issued(self, claims: dict[str, Any]) -> bool:
        if self.settings.skip_issuer_verification:
            return True
        return str(claims.get("iss", "")).rstrip("/") == self.settings.issuer.rstrip("/")

    async def verify(self, token: str) -> tuple[float, Identity]:
        """The token's expiry and identity; TokenError when this issuer does not vouch."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        algorithm = header.get("alg")
        try:
            doc = await self.provider.document()
            listed = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
            if algorithm not in ASYMMETRIC or algorithm not in listed:
                raise TokenError(f"token signed with {algorithm!r}, not an algorithm taken")
            keys = await self.provider.keys(header.get("kid"), algorithm)
        except ProviderDown as exc:
            log.warning(
                "oidc issuer unavailable", extra={"issuer": self.settings.issuer, "error": str(exc)}
            )
            raise TokenError(f"issuer {self.settings.issuer} unavailable") from None
        except UnknownKey as exc:
            raise TokenError(f"invalid token: {exc}") from None
        try:
            claims = decode(
                token,
                keys,
                algorithm,
                # expiry and not-before are checked below, as zot checks them
                options={
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        expiry = self._check(claims, str(doc.get("issuer", "")))
        try:
            user, groups = self.mapper.map(claims)
        except ClaimsRefused as exc:
            raise TokenError(f"token refused by claimMapping: {exc}") from None
        return expiry, Identity(user=user, groups=groups, method="oidc", claims=claims)

    def _check(self, claims: dict[str, Any], issuer: str) -> float:
        """The token's `exp`, once its time, issuer and audience are checked."""
        now = time.time()
        exp, nbf = _number(claims.get("exp")), claims.get("nbf")
        not_before = None if nbf is None else _number(nbf)
        if exp is None:
            raise TokenError("token without a valid expiry (exp)")
        if exp < now:
            raise TokenError("token expired")
        if nbf is not None and (not_before is None or not_before > now + NBF_LEEWAY):
            raise TokenError("token not valid yet (nbf)")
        if not self.settings.skip_issuer_verification and claims.get("iss") != issuer:
            raise TokenError("token issued by another issuer")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise TokenError("token without a valid audience (aud)")
        if not set(audiences) & set(self.settings.audiences):
            raise TokenError("token issued for another audience")
        return exp


def _number(value: Any) -> float | None:
    """A time claim's seconds; None for anything else, NaN and infinities included (Python's
    JSON reads them, and NaN compares as neither past nor future) and integers past floats."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past any float
        return None
    return number if math.isfinite(number) else None


def _unverified(token: str) -> dict[str, Any]:
    """The claims as the token states them, before any check: only to pick its issuer."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):  # a few KiB of `[` nest past Python's stack
        return {}
    return data if isinstance(data, dict) else {}


def _ssl(settings: OidcIssuer, where: str) -> ssl.SSLContext | None:
    """The trust for an issuer behind a private CA (it replaces the system's, as zot's)."""
    pem = settings.certificate_authority
    key = f"{where}.certificateAuthority"
    if settings.certificate_authority_file is not None:
        key += "File"
        try:
            pem = settings.certificate_authority_file.read_text()
        except (OSError, UnicodeError) as exc:
            raise ConfigError(
                key, f"cannot read {settings.certificate_authority_file}: {exc}"
            ) from None
    if not pem:
        return None
    try:
        return ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(key, f"not a PEM CA certificate: {exc}") from None
