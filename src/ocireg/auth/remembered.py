"""Credentials verified lately, so that a client sending Basic credentials on every request
costs one check a minute, not one per request (a bcrypt hash, an LDAP bind).

Entries are keyed by an HMAC of the credentials under a per-process random key: memory
never holds a password, and a dump of the cache is useless without the key. Failures are
never kept (that would make guessing cheaper), and concurrent checks of one credential share
one check (a client opens many connections with the same credentials at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
SECONDS = 60.0
LIMIT = 4096


class Remembered(Generic[T]):
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[float, T]] = {}
        self._pending: dict[bytes, asyncio.Future[T | None]] = {}
        self._generation = 0  # a check begun before the last `clear` is not remembered

    async def check(
        self, user: str, password: str, verify: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """What `verify` says of these credentials (None: refused), remembered for SECONDS
        when it accepts them. What `verify` raises, every check waiting for it raises."""
        # The user's length first: no user and password pair reads as another one.
        name = user.encode()
        message = len(name).to_bytes(4, "big") + name + password.encode()
        key = hmac.new(self._key, message, hashlib.sha256).digest()
        now = time.monotonic()
        generation = self._generation
        found = self._verified.get(key)
        if found is not None and found[0] > now:
            return found[1]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(verify())
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._forget_pending(key, done))
        value = await asyncio.shield(pending)
        if value is None or generation != self._generation:
            return value  # refused, or checked against what `clear` has replaced
        if len(self._verified) >= LIMIT:
            self._verified = {k: v for k, v in self._verified.items() if v[0] > now}
            if len(self._verified) >= LIMIT:
                self._verified.clear()
        self._verified[key] = (time.monotonic() + SECONDS, value)
        return value

    def _forget_pending(self, key: bytes, done: asyncio.Future[T | None]) -> None:
        if self._pending.get(key) is done:  # not a check begun after a `clear`
            del self._pending[key]
        if not done.cancelled():
            # Read here as well: when every request waiting for it went away (shielded, the
            # check runs on), an exception nobody read would be logged as lost.
            done.exception()

    def clear(self) -> None:
        """Forget every credential (the users or their passwords changed), and what checks
        in progress find."""
        self._verified.clear()
        self._pending.clear()
        self._generation += 1
