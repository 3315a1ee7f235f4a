"""Driver selection by zot's `storage.storageDriver.name` (checked by `load_config`): an
explicit table, no import magic."""

from __future__ import annotations

from collections.abc import Callable

from ocireg.config import Config
from ocireg.storage.base import StorageDriver
from ocireg.storage.filesystem import FilesystemDriver


def _filesystem(config: Config) -> StorageDriver:
    return FilesystemDriver(config.storage.root_directory, fsync=config.storage.commit)


def _s3(config: Config) -> StorageDriver:
    from ocireg.storage.s3 import S3Driver  # imports botocore: only when used

    assert config.s3 is not None  # DRIVERS["s3"] is chosen only then
    return S3Driver(config.s3)


DRIVERS: dict[str, Callable[[Config], StorageDriver]] = {
    "filesystem": _filesystem,
    "s3": _s3,
}


def create_driver(config: Config) -> StorageDriver:
    return DRIVERS[config.storage_driver](config)
