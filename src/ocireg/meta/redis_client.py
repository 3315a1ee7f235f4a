"""A redis-py client from zot's `cacheDriver` keys, as go-redis's universal client picks
one: a URL (with `addr=` parameters: Redis Cluster), else `addr` with `master_name` (the
Sentinels of a master set), several addresses (Redis Cluster) or one (a plain client)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ocireg.settings.drivers import RedisRetries, RedisSettings

# redis-py waits forever by default; a dead Redis must fail the start-up check instead.
DEFAULT_TIMEOUTS = {"socket_connect_timeout": 3.0, "socket_timeout": 5.0}


@dataclass
class RedisClient:
    client: Any  # redis-py's Redis or RedisCluster
    endpoint: str  # what errors name (no password in it)
    sentinels: list[Any] = field(default_factory=list)  # clients of the Sentinels asked

    async def close(self) -> None:
        for client in (self.client, *self.sentinels):
            await client.aclose()


def client_from_config(settings: RedisSettings) -> RedisClient:
    """The client zot's keys describe."""
    opts: dict[str, Any] = dict(DEFAULT_TIMEOUTS)
    # Without the retry keys, go-redis's defaults (what zot does with the same section), not
    # redis-py's: those depend on its version (8.x: 10 tries more, timeouts included, which
    # kept a request 59 s on a Redis that stopped answering).
    opts["retry"] = _retry(settings.retries or RedisRetries())
    url = settings.url
    if url:
        if "addr=" in url:
            return RedisClient(_cluster_from_url(url, opts), _safe(url))
        return RedisClient(aioredis.Redis.from_url(url, **opts), _safe(url))
    opts.update(settings.options)
    addrs = settings.addrs
    if settings.master_name:
        return _sentinel_client(settings, opts)
    if len(addrs) > 1:
        nodes = [ClusterNode(*_host_port(a)) for a in addrs]
        opts.pop("db", None)
        return RedisClient(aioredis.RedisCluster(startup_nodes=nodes, **opts), ",".join(addrs))
    host, port = _host_port(addrs[0])
    return RedisClient(aioredis.Redis(host=host, port=port, **opts), f"redis://{host}:{port}")


def _cluster_from_url(url: str, opts: dict[str, Any]) -> Any:
    """go-redis's cluster URL: the URL's host and each `addr=` of its query are nodes.
    redis-py's `from_url` would pass `addr` on to the client, which refuses it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    nodes = [ClusterNode(*_host_port(value)) for key, value in query if key == "addr"]
    rest = urlencode([(key, value) for key, value in query if key != "addr"])
    plain = urlunsplit(parts._replace(query=rest))
    return aioredis.RedisCluster.from_url(plain, startup_nodes=nodes, **opts)


def _sentinel_client(settings: RedisSettings, opts: dict[str, Any]) -> RedisClient:
    """The master of `master_name` as the Sentinels in `addr` name it now. redis-py asks
    them again whenever a connection to the master fails or finds a replica (after a
    failover), so the client follows the master without a restart."""
    assert settings.master_name
    # The Sentinels get the timeouts and their own credentials, not the master's.
    to_sentinels = {
        key: value for key, value in opts.items() if key.startswith("socket_") or key == "retry"
    }
    sentinel = Sentinel(
        [_host_port(a) for a in settings.addrs],
        sentinel_kwargs={**to_sentinels, **settings.sentinel_auth},
        **opts,
    )
    return RedisClient(
        sentinel.master_for(settings.master_name),
        f"redis-sentinel://{','.join(settings.addrs)}/{settings.master_name}",
        list(sentinel.sentinels),
    )


# How redis-py names a Sentinel it could not ask: the whole client's repr (pool, options).
_SENTINEL_REPR = re.compile(
    r"<redis\.asyncio\.client\.Redis\(.*?host=([^,]+),port=(\d+),.*?\)>\)>\)>"
)


def error_text(exc: BaseException) -> str:
    """What an error of the client says, a Sentinel named by its address only."""
    return _SENTINEL_REPR.sub(r"Sentinel \1:\2", str(exc))


def _retry(retries: RedisRetries) -> Retry:
    """go-redis's rule: up to `retries` more tries of a command whose connection failed
    (refused, reset, a Sentinel naming no master yet), waiting between `first` and `longest`
    seconds (doubling, with jitter). A command that timed out is not sent again: another
    try would wait as long, so a request waits the documented timeouts once
    (docs/storage.md, "Outages"), not once per try."""
    errors = (RedisConnectionError,)
    if not retries.longest:
        return Retry(NoBackoff(), retries.retries, supported_errors=errors)
    backoff = ExponentialWithJitterBackoff(base=retries.first, cap=retries.longest)
    return Retry(backoff, retries.retries, supported_errors=errors)


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = str(addr).rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


def _safe(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)
