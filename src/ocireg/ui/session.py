"""Web sessions: a signed cookie that every member of a cluster accepts, and CSRF tokens.

An htpasswd user's cookie holds the user and an expiry, with an HMAC-SHA256 over both and
over the user's current htpasswd entry (its bcrypt hash), so a changed password or a removed
user ends that user's sessions at once. A bearer user's cookie (`http.auth.bearer`: the
token server decides, `ocireg.ui.tokens`) holds the user, the password and the expiry sealed
with AES-256-GCM: the pages need the password to fetch tokens, the browser may not read it.
An LDAP user's cookie (`http.auth.ldap`) holds the user and an expiry under an HMAC of a key
of its own, and no password: the directory has no hash to bind it to, so the pages look the
user up again (`AuthServices.directory_user`, remembered for a minute), which ends the
session of a user removed from the directory and brings a change of groups.
An OpenID user's cookie (`http.auth.openid`) holds the user, the groups the provider's token
gave, the provider and an expiry under an HMAC of a key of its own: nothing to look up again
(the provider is asked only at login), so it lasts as long as zot's sessions (two hours).
The login itself carries its state, nonce and PKCE verifier to the callback in a cookie
sealed with AES-256-GCM (`seal`/`unseal`).
The keys are derived (HKDF) from a secret:
- in a cluster, the cluster's `hashKey`, which every member already holds to prove its
  traffic to the others: no member needs to tell another anything, and a session made on
  one member is good on all of them;
- on a single instance, a random secret the main process makes at start-up and hands to its
  workers through the environment (`SESSION_SECRET_ENV`): sessions end when it restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ocireg.auth.htpasswd import Htpasswd
from ocireg.auth.middleware import SESSION_COOKIE

COOKIE = SESSION_COOKIE  # the API reads it too (auth/middleware.py)
CSRF_COOKIE = "ocireg_csrf"
LIFETIME = 12 * 3600.0  # seconds a login lasts
SESSION_SECRET_ENV = "OCIREG_UI_SESSION_SECRET"
SEALED = "b."  # a bearer user's cookie; an htpasswd one starts with base64 of "{" ("ey")
DIRECTORY = "d."  # an LDAP user's cookie
OPENID = "o."  # an OpenID user's cookie
OPENID_LIFETIME = 7200.0  # zot's session cookie max age


def instance_secret() -> bytes:
    """The single instance's secret: the one its main process published, or (an app made
    without the runner, one process) a fresh one."""
    published = os.environ.get(SESSION_SECRET_ENV)
    return bytes.fromhex(published) if published else secrets.token_bytes(32)


def publish_instance_secret() -> None:
    """In the main process, before any worker exists: one secret for all of them."""
    os.environ.setdefault(SESSION_SECRET_ENV, secrets.token_hex(32))


@dataclass(frozen=True)
class Session:
    user: str
    expires: float
    token: str  # the cookie's value, which the CSRF token is derived from
    password: str | None = None  # a bearer user's, for the token server
    directory: bool = False  # an LDAP user's: the directory says who they are now
    groups: tuple[str, ...] | None = None  # an OpenID user's, from the provider's token
    provider: str = ""  # an OpenID user's


class Sessions:
    def __init__(
        self,
        htpasswd: Htpasswd | None,
        secret: bytes,
        sealed: bool = False,
        directory: bool = False,
        openid: bool = False,
    ) -> None:
        self.htpasswd = htpasswd
        self.key = _derive(secret, b"ocireg ui session v1")
        # Only with bearer auth: without it a sealed cookie means nothing.
        self.aead = AESGCM(_derive(secret, b"ocireg ui sealed session v1")) if sealed else None
        # Only with LDAP; a key of its own, so no other cookie's MAC can pass for one.
        self.directory_key = (
            _derive(secret, b"ocireg ui directory session v1") if directory else None
        )
        # Only with OpenID: its sessions' MAC key, and the key that seals a login's state.
        self.openid_key = _derive(secret, b"ocireg ui openid session v1") if openid else None
        self.login_aead = AESGCM(_derive(secret, b"ocireg openid login v1")) if openid else None

    def seal(self, data: dict[str, Any], lifetime: float) -> str:
        """A login's state for the browser to carry back: it can neither read nor alter it."""
        assert self.login_aead is not None, "login state needs OpenID"
        return _sealed(self.login_aead, _json({**data, "e": _expiry(None, lifetime)}), b"login")

    def unseal(self, value: str) -> dict[str, Any] | None:
        """What `seal` sealed, or None when it is forged, altered or stale."""
        if self.login_aead is None or not value:
            return None
        try:
            data = json.loads(_opened(self.login_aead, value, b"login"))
        except (ValueError, TypeError, InvalidTag):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), int):
            return None
        return data if data["e"] >= time.time() else None

    def issue_openid(
        self, user: str, groups: tuple[str, ...], provider: str, now: float | None = None
    ) -> str:
        """An OpenID user's cookie: the user, the token's groups, the provider, signed."""
        assert self.openid_key is not None, "openid sessions need http.auth.openid"
        payload = _payload(user, now, OPENID_LIFETIME, g=list(groups), p=provider)
        return f"{OPENID}{payload}.{_hmac(self.openid_key, payload.encode())}"

    def issue_sealed(self, user: str, password: str, now: float | None = None) -> str:
        """A bearer user's cookie: AES-GCM authenticates it, nothing else is needed."""
        assert self.aead is not None, "sealed sessions need bearer auth"
        plain = _json({"u": user, "p": password, "e": _expiry(now, LIFETIME)})
        return SEALED + _sealed(self.aead, plain, SEALED.encode())

    def _unseal(self, value: str) -> tuple[str, str, float] | None:
        if self.aead is None:
            return None
        try:
            data = json.loads(_opened(self.aead, value[len(SEALED) :], SEALED.encode()))
            return str(data["u"]), str(data["p"]), float(data["e"])
        except (ValueError, KeyError, TypeError, InvalidTag):
            return None

    def issue(self, user: str, now: float | None = None) -> str:
        """An htpasswd user's cookie, bound to the user's entry in the file."""
        payload = _payload(user, now, LIFETIME)
        return f"{payload}.{self._mac(payload, user)}"

    def issue_directory(self, user: str, now: float | None = None) -> str:
        """An LDAP user's cookie: the user and the expiry, signed."""
        assert self.directory_key is not None, "directory sessions need LDAP"
        payload = _payload(user, now, LIFETIME)
        return f"{DIRECTORY}{payload}.{_hmac(self.directory_key, payload.encode())}"

    def verify(self, value: str | None, now: float | None = None) -> Session | None:
        """The session the cookie carries, or None when it is absent, forged or stale."""
        if not value:
            return None
        if value.startswith(SEALED):
            opened = self._unseal(value)
            if opened is None or opened[2] < (now or time.time()):
                return None
            return Session(opened[0], opened[2], value, password=opened[1])
        directory = value.startswith(DIRECTORY)
        openid = value.startswith(OPENID)
        payload, _, mac = value.removeprefix(DIRECTORY).removeprefix(OPENID).partition(".")
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user, expires = str(data["u"]), float(data["e"])
            groups = tuple(str(g) for g in data["g"]) if openid else None
            provider = str(data["p"]) if openid else ""
        except (ValueError, KeyError, TypeError):
            return None
        if openid or directory:
            key = self.openid_key if openid else self.directory_key
            expected = None if key is None else _hmac(key, payload.encode())
        else:
            expected = self._mac(payload, user)
        # As bytes: the cookie was read as latin-1, and compare_digest refuses a str that is
        # not ASCII (TypeError), where such a MAC is simply not the expected one.
        if expected is None or not hmac.compare_digest(expected.encode(), mac.encode()):
            return None
        if expires < (now or time.time()):
            return None
        return Session(user, expires, value, directory=directory, groups=groups, provider=provider)

    def csrf(self, seed: str) -> str:
        """The token a form carries (its POST is refused without it). `seed` is the session
        cookie, or for anonymous users a random cookie of their own (`CSRF_COOKIE`): another
        site can neither read it nor, SameSite=Strict, make the browser send it."""
        return _hmac(self.key, b"csrf\0" + seed.encode())[:40]

    def csrf_ok(self, seed: str, token: str) -> bool:
        # As bytes: compare_digest raises TypeError on a str that is not ASCII (a forged form)
        expected = self.csrf(seed).encode()
        return bool(seed) and hmac.compare_digest(expected, token.encode("utf-8", "surrogatepass"))

    def _mac(self, payload: str, user: str) -> str | None:
        entry = self.htpasswd.entry(user) if self.htpasswd is not None else None
        if entry is None:
            return None  # no such user (any more): no session
        return _hmac(self.key, payload.encode() + b"\0" + entry)


def session_token(cookie: str) -> str:
    """What a logout notes of a session (`MetaStore.end_session`): a digest of its cookie,
    so that the store holds nothing a browser could send back."""
    return hashlib.sha256(cookie.encode("latin-1", "replace")).hexdigest()


def _payload(user: str, now: float | None, lifetime: float, **more: Any) -> str:
    """A signed cookie's body: the user, the expiry, a session id, and `more`."""
    body = {"u": user, "e": _expiry(now, lifetime), **more, "n": _session_id()}
    return _b64(_json(body))


def _expiry(now: float | None, lifetime: float) -> int:
    return int((now or time.time()) + lifetime)


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _sealed(aead: AESGCM, plain: bytes, aad: bytes) -> str:
    """`plain` encrypted and authenticated under a fresh nonce, for a cookie."""
    nonce = secrets.token_bytes(12)
    return _b64(nonce + aead.encrypt(nonce, plain, aad))


def _opened(aead: AESGCM, value: str, aad: bytes) -> bytes:
    """What `_sealed` sealed; InvalidTag (or ValueError) when it was altered."""
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return aead.decrypt(raw[:12], raw[12:], aad)


def _session_id() -> str:
    """Makes each login's cookie its own: a logout ends that one session (`session_token`),
    not another login of the same user in the same second, whose cookie would otherwise be
    the same bytes."""
    return secrets.token_urlsafe(12)


def _hmac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
