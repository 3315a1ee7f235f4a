"""Driver selection by zot's `storage.storageDriver.name`: an explicit table, no import magic."""

from __future__ import annotations

from collections.abc import Callable

from ocireg.config import Config
from ocireg.errors import ConfigError
from ocireg.storage.base import StorageDriver
from ocireg.storage.filesystem import FilesystemDriver


def _filesystem(config: Config) -> StorageDriver:
    return FilesystemDriver(config.storage.root_directory, fsync=config.storage.commit)


def _s3(config: Config) -> StorageDriver:
    from ocireg.storage.s3 import S3Driver, S3Settings  # imports botocore: only when used

    return S3Driver(S3Settings.from_map(config.storage.storage_driver or {}))


DRIVERS: dict[str, Callable[[Config], StorageDriver]] = {
    "filesystem": _filesystem,
    "s3": _s3,
}


def create_driver(config: Config) -> StorageDriver:
    spec = config.storage.storage_driver or {}
    lowered = {str(k).lower(): v for k, v in spec.items()}
    name = str(lowered.get("name", "filesystem")).lower()
    factory = DRIVERS.get(name)
    if factory is None:
        raise ConfigError(
            "storage.storageDriver.name", f"unknown driver {name!r} (known: {', '.join(DRIVERS)})"
        )
    return factory(config)
