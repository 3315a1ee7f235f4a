"""Store selection by zot's keys: `storage.remoteCache` + `storage.cacheDriver.name`."""

from __future__ import annotations

from collections.abc import Callable

from ocireg.config import Config
from ocireg.errors import ConfigError
from ocireg.meta.base import MetaStore
from ocireg.meta.sqlite import SqliteMeta

META_FILE = ".ocireg/meta.db"


def _sqlite(config: Config) -> MetaStore:
    return SqliteMeta(config.storage.root_directory / META_FILE)


def _redis(config: Config) -> MetaStore:
    from ocireg.meta.redis import RedisMeta

    return RedisMeta(config.storage.cache_driver or {})


STORES: dict[str, Callable[[Config], MetaStore]] = {"sqlite": _sqlite, "redis": _redis}


def create_meta(config: Config) -> MetaStore:
    spec = {str(k).lower(): v for k, v in (config.storage.cache_driver or {}).items()}
    if not config.storage.remote_cache or not spec:
        return _sqlite(config)
    name = str(spec.get("name", "")).lower()
    factory = STORES.get(name)
    if factory is None:
        raise ConfigError(
            "storage.cacheDriver.name",
            f"unknown cache driver {name!r} (known: {', '.join(STORES)})",
        )
    return factory(config)
