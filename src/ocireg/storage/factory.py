"""Storage selection by zot's `storage.storageDriver.name` (checked by `load_config`): an
explicit table, no import magic. Each entry builds the driver and the upload-session store
that goes with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ocireg.config import Config
from ocireg.storage.base import StorageDriver
from ocireg.storage.filesystem import FilesystemDriver
from ocireg.storage.routed import RoutedDriver
from ocireg.storage.sessions import FileSessions, SessionStore


@dataclass(frozen=True)
class Storage:
    driver: StorageDriver
    sessions: SessionStore


def _filesystem(config: Config, entries: frozenset[str]) -> Storage:
    driver: StorageDriver = FilesystemDriver(
        config.storage.root_directory, fsync=config.storage.commit
    )
    if config.sub_paths:  # zot's storage.subPaths: a root per first name component
        routes: dict[str, StorageDriver] = {
            sub.route: FilesystemDriver(sub.root_directory, fsync=sub.commit)
            for sub in config.sub_paths
        }
        driver = RoutedDriver(driver, routes, entries)
    return Storage(driver, FileSessions(driver))


def _s3(config: Config, entries: frozenset[str]) -> Storage:
    from ocireg.storage.s3 import S3Driver, S3Sessions  # imports botocore: only when used

    assert config.s3 is not None  # DRIVERS["s3"] is chosen only then
    driver = S3Driver(config.s3)
    return Storage(driver, S3Sessions(driver))


DRIVERS: dict[str, Callable[[Config, frozenset[str]], Storage]] = {
    "filesystem": _filesystem,
    "s3": _s3,
}


def create_storage(config: Config, repository_entries: frozenset[str]) -> Storage:
    """`repository_entries`: the names a repository's directory holds of its own (the
    layout's), which tell a one-component repository's paths from those of repositories
    below it (zot's sub paths never take the former: storage/routed.py)."""
    return DRIVERS[config.storage_driver](config, repository_entries)
