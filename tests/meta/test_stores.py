"""The metadata-store suite bound to each store."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from ocireg.meta import MetaStore, MetaUnavailable
from ocireg.meta.redis import RedisMeta
from ocireg.meta.sqlite import SqliteMeta
from ocireg.settings.drivers import RedisSettings
from tests.meta.meta_suite import MetaSuite
from tests.support.backends import Redis


class TestSqliteMeta(MetaSuite):
    def make_store(self) -> MetaStore:
        return SqliteMeta(self.tmp / "meta.db")


class TestRedisMeta(MetaSuite):
    @pytest.fixture(autouse=True)
    def _redis(self, redis_server: Redis) -> None:
        self.spec = {"name": "redis", "url": redis_server.url, "keyprefix": uuid.uuid4().hex}

    def make_store(self) -> MetaStore:
        return RedisMeta(RedisSettings.from_map(self.spec))


def test_redis_options_from_zot_keys(redis_server: Redis) -> None:
    """zot's addr list and client options (config-redis-all-options.json) map to redis-py."""
    import asyncio

    store = RedisMeta(
        RedisSettings.from_map(
            {
                "name": "redis",
                "addr": [f"127.0.0.1:{redis_server.port}"],
                "db": 2,
                "dial_timeout": "2s",
                "read_timeout": "3s",
                "pool_size": 4,
                "client_name": "ocireg",
            }
        )
    )
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (
        2,
        2.0,
        3.0,
    )

    async def check() -> None:
        await store.health()
        await store.close()

    asyncio.run(check())


def test_sqlite_records_a_batch_of_pulls_in_one_transaction(tmp_path: Path) -> None:
    """record_pulls writes a batch in one transaction (one commit, not one per pull, as it
    runs on the event loop): a row sqlite refuses leaves none of the batch behind, and
    the store takes the next batch."""
    good = {f"sha256:{n:064x}": 100.0 + n for n in range(50)}
    refused: dict[str, Any] = {**good, "sha256:" + "f" * 64: None}  # `at` is NOT NULL

    async def body() -> None:
        store = SqliteMeta(tmp_path / "meta.db")
        try:
            with pytest.raises(MetaUnavailable, match="NOT NULL"):
                await store.record_pulls("r", refused)
            assert await store.pulls("r") == {}
            await store.record_pulls("r", good)
            assert await store.pulls("r") == good
        finally:
            await store.close()

    asyncio.run(body())
