"""Store selection by zot's keys: `storage.remoteCache` + `storage.cacheDriver.name`
(checked by `load_config`): an explicit table."""

from __future__ import annotations

from collections.abc import Callable

from ocireg.config import Config
from ocireg.meta.base import MetaStore
from ocireg.meta.sqlite import SqliteMeta

META_FILE = ".ocireg/meta.db"


def _sqlite(config: Config) -> MetaStore:
    return SqliteMeta(config.storage.root_directory / META_FILE)


def _redis(config: Config) -> MetaStore:
    from ocireg.meta.redis import RedisMeta

    assert config.redis is not None  # STORES["redis"] is chosen only then
    return RedisMeta(config.redis)


STORES: dict[str, Callable[[Config], MetaStore]] = {"sqlite": _sqlite, "redis": _redis}


def create_meta(config: Config) -> MetaStore:
    return STORES[config.cache_driver](config)
