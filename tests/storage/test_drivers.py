"""The driver suite and the session-store suite bound to each backend."""

from __future__ import annotations

import uuid

import pytest

from ocireg.storage import FileSessions, SessionStore, StorageDriver
from ocireg.storage.filesystem import FilesystemDriver
from ocireg.storage.s3 import S3Driver, S3Sessions, S3Settings
from tests.storage.driver_suite import DriverSuite
from tests.storage.session_suite import SessionSuite
from tests.support.backends import SeaweedFS


class TestFilesystemDriver(DriverSuite):
    def make_driver(self) -> StorageDriver:
        return FilesystemDriver(self.tmp / "root")


class TestFileSessions(SessionSuite):
    def make_storage(self) -> tuple[StorageDriver, SessionStore]:
        driver = FilesystemDriver(self.tmp / "root")
        return driver, FileSessions(driver)


class OnS3:
    @pytest.fixture(autouse=True)
    def _s3(self, seaweedfs: SeaweedFS) -> None:
        self.settings = S3Settings.from_map(seaweedfs.storage_driver(f"/t-{uuid.uuid4().hex[:12]}"))


class TestS3Driver(OnS3, DriverSuite):
    def make_driver(self) -> StorageDriver:
        return S3Driver(self.settings)


class TestS3Sessions(OnS3, SessionSuite):
    def make_storage(self) -> tuple[StorageDriver, SessionStore]:
        driver = S3Driver(self.settings)
        return driver, S3Sessions(driver)
