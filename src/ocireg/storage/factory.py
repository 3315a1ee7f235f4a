"""Driver selection by zot's `storage.storageDriver.name`: an explicit table, no import magic."""

from __future__ import annotations

from collections.abc import Callable

from ocireg.config import Config
from ocireg.errors import ConfigError
from ocireg.storage.base import StorageDriver
from ocireg.storage.filesystem import FilesystemDriver


def _filesystem(config: Config) -> StorageDriver:
    return FilesystemDriver(config.storage.root_directory, fsync=config.storage.commit)


DRIVERS: dict[str, Callable[[Config], StorageDriver]] = {
    "filesystem": _filesystem,
}


def create_driver(config: Config) -> StorageDriver:
    spec = config.storage.storage_driver or {}
    name = str(spec.get("name", "filesystem")).lower()
    factory = DRIVERS.get(name)
    if factory is None:
        raise ConfigError(
            "storage.storageDriver.name", f"unknown driver {name!r} (known: {', '.join(DRIVERS)})"
        )
    return factory(config)
