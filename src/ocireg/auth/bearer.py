"""The Docker/OCI token flow: JWTs signed by the token server whose certificate is
`http.auth.bearer.cert`, their `access` claim granting actions per resource.

A client without a token is told where to get one (`realm`), for which `service`, and the
`scope` this very request needs, so it can ask the token server for exactly that.

PyJWT and cryptography cost each worker ~70 ms to import: this module is imported only
where bearer auth is configured (auth/core.py); what a token grants is in auth/grants.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ocireg.auth.grants import TokenError, is_grant
from ocireg.auth.settings import BearerSettings
from ocireg.errors import ConfigError
from ocireg.identity import Identity

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
_RSA_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
_EC_ALGORITHMS = ["ES256", "ES384", "ES512"]
# Tokens issued a little "in the future" by a server whose clock runs ahead still work.
CLOCK_SKEW_SECONDS = 30


def load_public_key(path: Path, where: str = "http.auth.bearer.cert") -> PublicKey:
    """The key of a PEM certificate (or, as a convenience, a PEM public key)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from None
    try:
        key: Any = x509.load_pem_x509_certificate(data).public_key()
    except ValueError:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise ConfigError(where, f"{path} is not a PEM certificate or public key") from None
    if isinstance(key, ed448.Ed448PublicKey) or not isinstance(
        key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    ):
        raise ConfigError(where, f"{path}: unsupported key type {type(key).__name__}")
    return key


class BearerVerifier:
    def __init__(self, settings: BearerSettings) -> None:
        assert settings.cert is not None, "built only with a certificate"
        self.realm = settings.realm
        self.service = settings.service
        self.key = load_public_key(settings.cert)
        if isinstance(self.key, rsa.RSAPublicKey):
            self.algorithms = _RSA_ALGORITHMS
        elif isinstance(self.key, ec.EllipticCurvePublicKey):
            self.algorithms = _EC_ALGORITHMS
        else:
            self.algorithms = ["EdDSA"]

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                leeway=CLOCK_SKEW_SECONDS,
                # An audience is checked below only when the token names one.
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        audience = claims.get("aud")
        if self.service and audience is not None:
            audiences = [audience] if isinstance(audience, str) else audience
            if not isinstance(audiences, list) or self.service not in audiences:
                raise TokenError("token issued for another service")
        access = claims.get("access") or []
        if not isinstance(access, list) or not all(is_grant(a) for a in access):
            raise TokenError("malformed access claim")
        subject = claims.get("sub")
        return Identity(
            user=subject if isinstance(subject, str) and subject else None,
            method="bearer",
            access=tuple(access),
        )
