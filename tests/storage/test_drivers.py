"""The driver suite bound to each driver."""

from __future__ import annotations

import uuid

import pytest

from ocireg.storage import StorageDriver
from ocireg.storage.filesystem import FilesystemDriver
from ocireg.storage.s3 import S3Driver, S3Settings
from tests.storage.driver_suite import DriverSuite
from tests.support.backends import SeaweedFS


class TestFilesystemDriver(DriverSuite):
    def make_driver(self) -> StorageDriver:
        return FilesystemDriver(self.tmp / "root")


class TestS3Driver(DriverSuite):
    @pytest.fixture(autouse=True)
    def _s3(self, seaweedfs: SeaweedFS) -> None:
        self.settings = S3Settings.from_map(seaweedfs.storage_driver(f"/t-{uuid.uuid4().hex[:12]}"))

    def make_driver(self) -> StorageDriver:
        return S3Driver(self.settings)
