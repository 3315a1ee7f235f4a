"""zot's `http.ratelimit`: at most `rate` requests per second from one client address, and
at most the rate given for a method (`methods`) for requests of that method; beyond it,
429 `TOOMANYREQUESTS` with `Retry-After`.

As zot's limiter does, each client address has a token bucket per limit: it holds a
second's worth of requests (so a client may send `rate` at once after a quiet second) and
refills continuously. The address is the connection's peer, never a header a client
writes. A request that a cluster member forwarded, with a proof that verified, is not
counted again: the client's own requests were counted where they arrived.

Each worker process counts on its own (docs/configuration.md): a client whose connections
spread over W workers may get up to W times the rate. Keeping one count for all workers
would cost every request a round trip to shared state, for a limit meant to stop a runaway
client rather than to meter one exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg.asgi import raw_headers, with_response_headers
from ocireg.config import Config, RateLimitConfig
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import FORWARDED_KEY

# Buckets of addresses seen; past this many, the full ones (idle for a second or more) are
# dropped, so that a scan from many addresses cannot grow the table without bound.
SWEEP_FROM = 10_000


class Verdict(NamedTuple):
    allowed: bool
    limit: int
    remaining: int  # whole requests left in the bucket
    reset: int  # whole seconds until the next request is let through (refused) or until
    # the bucket is full again (let through)


class TokenBuckets:
    """One token bucket per key, `rate` tokens a second, holding at most `rate`."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._sweep_at = SWEEP_FROM

    def take(self, key: str) -> Verdict:
        """Take a token for `key`, if there is one."""
        now = self.clock()
        tokens, when = self._buckets.get(key, (self.rate, now))
        tokens = min(self.rate, tokens + (now - when) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) >= self._sweep_at:
            self._sweep(now)
        missing = (self.rate if allowed else 1) - tokens
        return Verdict(allowed, self.rate, int(tokens), math.ceil(missing / self.rate))

    def _sweep(self, now: float) -> None:
        full = [
            key
            for key, (tokens, when) in self._buckets.items()
            if tokens + (now - when) * self.rate >= self.rate
        ]
        for key in full:
            del self._buckets[key]
        # Sweep again when the table has doubled: each request pays O(1) on average.
        self._sweep_at = max(SWEEP_FROM, 2 * len(self._buckets))


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: RateLimitConfig) -> None:
        self.app = app
        # (method or None for every request, its buckets)
        self.limits: list[tuple[str | None, TokenBuckets]] = []
        if limits.rate is not None:
            self.limits.append((None, TokenBuckets(limits.rate)))
        self.limits += [(method, TokenBuckets(rate)) for method, rate in limits.methods]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(FORWARDED_KEY):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("",))[0]
        tightest: Verdict | None = None
        for method, buckets in self.limits:
            if method is None or method == scope["method"]:
                verdict = buckets.take(client)
                if not verdict.allowed:
                    raise RegistryError(
                        ErrorCode.TOOMANYREQUESTS,
                        detail={"rate": verdict.limit, "method": method or "any"},
                        headers={"Retry-After": str(verdict.reset), **_headers(verdict)},
                    )
                if tightest is None or verdict.remaining < tightest.remaining:
                    tightest = verdict
        if tightest is not None:
            send = with_response_headers(send, raw_headers(_headers(tightest)))
        await self.app(scope, receive, send)


def _headers(verdict: Verdict) -> dict[str, str]:
    """As zot sends them on every answer while a limit applies (the IETF draft's names)."""
    return {
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(verdict.reset),
    }


def rate_limit(config: Config) -> Middleware | None:
    limits = config.http.rate_limit
    if limits is None or (limits.rate is None and not limits.methods):
        return None
    return Middleware(RateLimitMiddleware, limits=limits)
