"""The driver of `storage.subPaths` (storage/routed.py): the driver suite through it, and what
is its own: which root a path goes to, listings that join the roots, and a copy between two
roots that is whole or absent at its destination."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ocireg.registry.layout import REPOSITORY_ENTRIES
from ocireg.storage import PathNotFound, StorageDriver
from ocireg.storage.filesystem import FilesystemDriver
from ocireg.storage.routed import RoutedDriver
from tests.storage.driver_suite import DriverSuite, MiB, read_all, run_on


def routed(tmp: Path) -> RoutedDriver:
    sub = FilesystemDriver(tmp / "team-root")
    return RoutedDriver(FilesystemDriver(tmp / "root"), {"team": sub}, REPOSITORY_ENTRIES)


class TestRoutedDriver(DriverSuite):
    """The contract, through the default root (the suite's paths are no sub path's)."""

    def make_driver(self) -> StorageDriver:
        return routed(self.tmp)


def test_paths_go_to_the_root_the_repository_name_picks(tmp_path: Path) -> None:
    async def body(d: StorageDriver) -> None:
        await d.put_content("team/index.json", b"{}")  # the repository `team`
        await d.put_content("team/blobs/sha256/aa", b"1")
        await d.put_content("team/app/index.json", b"{}")  # `team/app`, under /team
        await d.put_content("solo/index.json", b"{}")
        assert (tmp_path / "root" / "team" / "index.json").is_file()
        assert (tmp_path / "root" / "team" / "blobs" / "sha256" / "aa").is_file()
        assert (tmp_path / "team-root" / "team" / "app" / "index.json").is_file()
        assert not (tmp_path / "root" / "team" / "app").exists()
        assert await d.list("") == ["solo/", "team/"]
        assert await d.list("team") == ["app/", "blobs/", "index.json"]
        assert await d.list("team/app") == ["index.json"]

    run_on(routed(tmp_path), body, clean=False)


def test_a_copy_between_roots_is_whole_or_absent(tmp_path: Path) -> None:
    """Stopped half-way (a cancelled request, as a crash would stop it), the copy leaves
    nothing at its destination, not even its temporary file; done, the bytes are whole."""
    data = os.urandom(48 * MiB)
    src, dst = "solo/blobs/sha256/ab", "team/app/blobs/sha256/ab"
    folder = tmp_path / "team-root" / "team" / "app" / "blobs" / "sha256"

    async def body(d: StorageDriver) -> None:
        await d.put_content(src, data)
        copying = asyncio.create_task(d.copy(src, dst))
        while not copying.done() and not (folder.is_dir() and os.listdir(folder)):  # noqa: ASYNC110 - a file, not an event
            await asyncio.sleep(0)  # until the copy wrote its first bytes
        assert not copying.done(), "the copy ended before it could be stopped"
        copying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copying
        with pytest.raises(PathNotFound):
            await d.stat(dst)
        assert os.listdir(folder) == []
        await d.copy(src, dst)
        assert await read_all(d, dst) == data
        assert os.listdir(folder) == ["ab"]

    run_on(routed(tmp_path), body, clean=False)
