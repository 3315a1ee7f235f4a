"""zot's API keys (`http.auth.apikey`): a user who logged in with a password makes keys,
then logs in with `user:zak_<32 hex>` as Basic credentials instead.

A key is 128 random bits (a UUID4's worth, as zot's); the metadata store keeps only the
SHA-256 of its hex part (zot's own hash; a plain hash is enough for a random secret of that
size, where a slow hash is for guessable passwords), so a dump of the store logs nobody in.
The details a key is listed with are zot's `APIKeyDetails`, in its JSON spelling.

A key acts with the groups its user had at their last password login (as zot: groups come
from the config and the directory, which a key login does not consult), noted in the store
when they change. Keys are looked up on every request, never remembered as passwords are
(`auth.remembered`): a lookup is one indexed read, and a revoked key must stop working on
every worker and member at once. `lastUsed` is written at most every LAST_USED_EVERY seconds
per key and process, not on each of the many requests of one pull.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from ocireg.identity import Identity
from ocireg.meta.base import MetaStore, MetaUnavailable

log = logging.getLogger("ocireg.auth")
PREFIX = "zak_"
LAST_USED_EVERY = 10.0  # seconds
# Go's zero time.Time, which zot lists for a key that never expires or was never used.
NEVER = "0001-01-01T00:00:00Z"
# zot parses expirationDate as Go's time.RFC3339: a date, a time with seconds, a zone.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.ASCII)
_SECRET = re.compile(r"[0-9a-f]{32}", re.ASCII)


class KeyRequestError(ValueError):
    """A creation request zot would answer 400."""


def hash_secret(secret: str) -> str:
    """What the store keys a secret (the hex after `zak_`) by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def go_time(moment: datetime) -> str:
    """`moment` as Go marshals a time.Time (RFC 3339, nanoseconds without trailing zeros,
    `Z` for UTC), so that the JSON reads as zot's."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    zone = moment.strftime("%z")
    return f"{text}{zone[:3]}:{zone[3:]}"


def parse_expiration(value: str) -> datetime:
    """An `expirationDate` as zot reads it (RFC 3339), or KeyRequestError."""
    if not _RFC3339.fullmatch(value):
        raise KeyRequestError("expirationDate is not an RFC 3339 time")
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # a 13th month, a 25th hour
        raise KeyRequestError("expirationDate is not an RFC 3339 time") from None


def expired(details: dict[str, Any], now: datetime | None = None) -> bool:
    expiration = details.get("expirationDate") or NEVER
    if expiration == NEVER:
        return False
    return datetime.fromisoformat(expiration) < (now or datetime.now(UTC))


def listed(details: dict[str, Any]) -> dict[str, Any]:
    """A key's details as GET lists them: `isExpired` as of now (zot sets it when it looks)."""
    return {**details, "isExpired": bool(details.get("isExpired")) or expired(details)}


def new_key(payload: Any, user_agent: str) -> tuple[str, dict[str, Any]]:
    """A new key for a creation request's JSON body: (the key to hand out once, its
    details to store). The body's fields are matched regardless of case, and `null` is an
    empty request, as Go's JSON decoding reads them."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise KeyRequestError("the body must be a JSON object")
    fields = {key.lower(): value for key, value in payload.items()}
    label = fields.get("label")
    scopes = fields.get("scopes")
    expiration = fields.get("expirationdate")
    if label is not None and not isinstance(label, str):
        raise KeyRequestError("label must be a string")
    if scopes is not None and not (
        isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)
    ):
        raise KeyRequestError("scopes must be a list of strings")
    if expiration is not None and not isinstance(expiration, str):
        raise KeyRequestError("expirationDate must be a string")
    now = datetime.now(UTC)
    expires = NEVER
    if expiration:
        when = parse_expiration(expiration)
        if when < now:
            raise KeyRequestError("expirationDate is in the past")
        expires = go_time(when)
    secret = secrets.token_hex(16)
    details = {
        "createdAt": go_time(now),
        "expirationDate": expires,
        "isExpired": False,
        "creatorUa": user_agent,
        "generatedBy": "manual",
        "lastUsed": NEVER,
        "label": label or "",
        "scopes": scopes,  # null when not given, as zot's
        "uuid": str(uuid.uuid4()),
    }
    return PREFIX + secret, details


async def create_key(
    meta: MetaStore, identity: Identity, payload: Any, user_agent: str
) -> dict[str, Any]:
    """A new key for `identity`, stored; zot's answer: the details and the key."""
    assert identity.user is not None, "keys are made by logged-in users"
    key, details = new_key(payload, user_agent)
    await meta.add_api_key(hash_secret(key.removeprefix(PREFIX)), identity.user, details)
    return {**details, "apiKey": key}


class ApiKeys:
    """The API-key side of one worker's logins: what it wrote lately, to write less."""

    def __init__(self) -> None:
        self._groups: dict[str, list[str]] = {}  # user -> the groups this process noted
        self._touched: dict[str, float] = {}  # secret's hash -> when lastUsed was written

    async def login(self, meta: MetaStore, user: str, password: str) -> Identity | None:
        """The identity a key gives `user`, or None when `password` is no live key of
        theirs (another's, revoked, expired)."""
        secret = password.removeprefix(PREFIX)
        if secret == password or not _SECRET.fullmatch(secret):
            return None
        hashed = hash_secret(secret)
        found = await meta.api_key(hashed)
        if found is None or found[0] != user or expired(found[1]):
            return None
        now = time.monotonic()
        if now - self._touched.get(hashed, -LAST_USED_EVERY) >= LAST_USED_EVERY:
            if len(self._touched) > 4096:
                self._touched.clear()
            self._touched[hashed] = now
            await meta.touch_api_key(hashed, go_time(datetime.now(UTC)))
        groups = await meta.user_groups(user)
        return Identity(user=user, groups=tuple(groups), method="apikey")

    async def note_groups(self, meta: MetaStore, user: str, groups: tuple[str, ...]) -> None:
        """Note a password login's groups for the user's keys, when they changed."""
        if self._groups.get(user) == list(groups):
            return
        try:
            await meta.set_user_groups(user, list(groups))
        except MetaUnavailable as exc:  # the login itself stands; the keys keep old groups
            log.warning("cannot note the user's groups", extra={"error": str(exc)})
            return
        if len(self._groups) > 4096:
            self._groups.clear()
        self._groups[user] = list(groups)
