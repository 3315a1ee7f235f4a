"""The rate limiter's buckets and who it counts, without a server (the server's behaviour
is in tests/process/test_rate_limit.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message

from ocireg.config import RateLimitConfig
from ocireg.errors import RegistryError
from ocireg.identity import FORWARDED_KEY
from ocireg.server import ratelimit
from ocireg.server.ratelimit import RateLimitMiddleware, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_a_seconds_worth_and_refills_continuously() -> None:
    clock = Clock()
    buckets = TokenBuckets(4, clock)
    assert [buckets.take("a").remaining for _ in range(4)] == [3, 2, 1, 0]
    refused = buckets.take("a")
    assert (refused.allowed, refused.reset) == (False, 1)  # 0.25 s, in whole seconds
    assert buckets.take("b").allowed  # each address has its own
    clock.now += 0.5  # two tokens back
    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, False]
    clock.now += 60  # never more than a second's worth
    assert [buckets.take("a").allowed for _ in range(5)] == [True] * 4 + [False]


def test_idle_addresses_are_dropped_past_the_sweep_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "SWEEP_FROM", 10)
    clock = Clock()
    buckets = TokenBuckets(1, clock)
    for n in range(9):
        buckets.take(f"10.0.0.{n}")
    clock.now += 2  # all of them full again
    buckets.take("10.0.1.1")  # the tenth: sweeps
    assert len(buckets._buckets) == 1


async def _answered(scope: Any, receive: Any, send: Any) -> None:
    """The app below the limiter: reaching it is being let through."""


async def _receive() -> Message:
    return {"type": "http.disconnect"}


async def _send(message: Message) -> None:
    pass


def _status(limiter: RateLimitMiddleware, method: str, **extra: Any) -> int:
    scope = {"type": "http", "method": method, "client": ("192.0.2.7", 5000), **extra}
    try:
        asyncio.run(limiter(scope, _receive, _send))
    except RegistryError as err:
        return err.status
    return 200


def test_per_method_limits_and_forwarded_requests() -> None:
    limits = RateLimitConfig(rate=100, methods=(("PUT", 1),))
    limiter = RateLimitMiddleware(_answered, limits)
    assert [_status(limiter, "PUT") for _ in range(2)] == [200, 429]
    assert _status(limiter, "GET") == 200  # another method: only the overall rate
    # A request a member forwarded with a verified proof was counted where it arrived.
    assert _status(limiter, "PUT", **{FORWARDED_KEY: True}) == 200
