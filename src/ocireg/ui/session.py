"""Web sessions: a signed cookie that every member of a cluster accepts, and CSRF tokens.

The cookie holds the user and an expiry, with an HMAC-SHA256 over both and over the user's
current htpasswd entry (its bcrypt hash). The HMAC key is derived (HKDF) from the cluster's
`hashKey` when there is one, else from nothing: so the secret of a session is the
configuration every member shares (the htpasswd file, plus the cluster key), no member needs
to tell another anything, and a changed password or a removed user ends that user's sessions
at once. Whoever can read the htpasswd file (and the cluster key) can make sessions for its
users: keep it as private as the passwords it protects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ocireg.auth.htpasswd import Htpasswd

COOKIE = "ocireg_session"
CSRF_COOKIE = "ocireg_csrf"
LIFETIME = 12 * 3600.0  # seconds a login lasts


@dataclass(frozen=True)
class Session:
    user: str
    expires: float
    token: str  # the cookie's value, which the CSRF token is derived from


class Sessions:
    def __init__(self, htpasswd: Htpasswd | None, cluster_key: bytes | None) -> None:
        self.htpasswd = htpasswd
        self.key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"ocireg ui session v1"
        ).derive(cluster_key or b"\0")

    def issue(self, user: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + LIFETIME)
        payload = _b64(json.dumps({"u": user, "e": expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload, user)}"

    def verify(self, value: str | None, now: float | None = None) -> Session | None:
        """The session the cookie carries, or None when it is absent, forged or stale."""
        if not value or self.htpasswd is None:
            return None
        payload, _, mac = value.partition(".")
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user, expires = str(data["u"]), float(data["e"])
        except (ValueError, KeyError, TypeError):
            return None
        expected = self._mac(payload, user)
        if expected is None or not hmac.compare_digest(expected, mac):
            return None
        if expires < (now or time.time()):
            return None
        return Session(user, expires, value)

    def csrf(self, seed: str) -> str:
        """The token a form carries (its POST is refused without it). `seed` is the session
        cookie, or for anonymous users a random cookie of their own (`CSRF_COOKIE`): another
        site can neither read it nor, SameSite=Strict, make the browser send it."""
        msg = b"csrf\0" + seed.encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()[:40]

    def csrf_ok(self, seed: str, token: str) -> bool:
        return bool(seed) and hmac.compare_digest(self.csrf(seed), token)

    def _mac(self, payload: str, user: str) -> str | None:
        entry = self.htpasswd.entry(user) if self.htpasswd is not None else None
        if entry is None:
            return None  # no such user (any more): no session
        msg = payload.encode() + b"\0" + entry
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
