"""Storage selection by zot's `storage.storageDriver.name` (checked by `load_config`): an
explicit table, no import magic. Each entry builds the driver and the upload-session store
that goes with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ocireg.config import Config
from ocireg.settings.drivers import S3Settings
from ocireg.settings.subpaths import SubPath
from ocireg.storage.base import StorageDriver
from ocireg.storage.filesystem import FilesystemDriver
from ocireg.storage.routed import RoutedDriver, RoutedSessions
from ocireg.storage.sessions import FileSessions, SessionStore


@dataclass(frozen=True)
class Storage:
    driver: StorageDriver
    sessions: SessionStore


def _s3_storage(settings: S3Settings) -> Storage:
    from ocireg.storage.s3 import S3Driver, S3Sessions  # imports botocore: only when used

    driver = S3Driver(settings)
    return Storage(driver, S3Sessions(driver))


def _filesystem_storage(root: Path, fsync: bool) -> Storage:
    driver = FilesystemDriver(root, fsync=fsync)
    return Storage(driver, FileSessions(driver))


def _sub_path_storage(sub: SubPath) -> Storage:
    if sub.s3 is not None:
        return _s3_storage(sub.s3)
    assert sub.root_directory is not None  # a sub path is on S3 or has a root
    return _filesystem_storage(sub.root_directory, sub.commit)


def _filesystem(config: Config) -> Storage:
    return _filesystem_storage(config.storage.root_directory, config.storage.commit)


def _s3(config: Config) -> Storage:
    assert config.s3 is not None  # DRIVERS["s3"] is chosen only then
    return _s3_storage(config.s3)


DRIVERS: dict[str, Callable[[Config], Storage]] = {
    "filesystem": _filesystem,
    "s3": _s3,
}


def create_storage(config: Config, repository_entries: frozenset[str]) -> Storage:
    """`repository_entries`: the names a repository's directory holds of its own (the
    layout's), which tell a one-component repository's paths from those of repositories
    below it (zot's sub paths never take the former: storage/routed.py)."""
    default = DRIVERS[config.storage_driver](config)
    if not config.sub_paths:
        return default
    # zot's storage.subPaths: a storage per first name component, each on disk or on S3
    subs = {sub.route: _sub_path_storage(sub) for sub in config.sub_paths}
    driver = RoutedDriver(
        default.driver, {route: sub.driver for route, sub in subs.items()}, repository_entries
    )
    stores = {id(default.driver): default.sessions}
    stores.update({id(sub.driver): sub.sessions for sub in subs.values()})
    return Storage(driver, RoutedSessions(driver, stores))
