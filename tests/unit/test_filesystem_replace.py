"""The filesystem driver's conditional replace (index.json): the new file is in place when
`put_if` (or a draft's `finish`) returns, and the replaced file is let go afterwards, off
the caller's path, also in a forked worker (Granian forks its workers)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ocireg.storage.filesystem import FilesystemDriver
from tests.support.server import wait_until

PATH = "repo/index.json"
BIG = b"x" * (2 << 20)  # large enough to be written in a thread


def deleted_files_held() -> int:
    """Descriptors of this process that name files unlinked (replaced) since."""
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        held += target.endswith("(deleted)") and "index.json" in target
    return held


async def replace_twice(driver: FilesystemDriver) -> str | None:
    first = await driver.put_if(PATH, BIG, None)
    assert first is not None
    second = await driver.put_if(PATH, b"small", first)
    assert second is not None
    # A stale version is refused and leaves the file as it is.
    assert await driver.put_if(PATH, b"lost", first) is None
    return await driver.put_if(PATH, BIG + b"!", second)


def test_put_if_replaces_and_lets_the_old_file_go(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    version = asyncio.run(replace_twice(driver))
    assert (tmp_path / PATH).read_bytes() == BIG + b"!"
    assert version == asyncio.run(driver.stat(PATH)).version
    wait_until(lambda: deleted_files_held() == 0, timeout=10)


def test_put_if_with_fsync_replaces_the_same_way(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path, fsync=True)
    asyncio.run(replace_twice(driver))
    assert (tmp_path / PATH).read_bytes() == BIG + b"!"
    wait_until(lambda: deleted_files_held() == 0, timeout=10)


@pytest.mark.parametrize("fsync", [False, True])
def test_a_drafted_replace_renames_the_draft_and_lets_the_old_file_go(
    tmp_path: Path, fsync: bool
) -> None:
    """A version begun before its end (`draft`): the file renamed into place is the one
    the beginning was written to, and the replaced one is let go as after `put_if`."""
    driver = FilesystemDriver(tmp_path, fsync=fsync)

    async def run() -> None:
        version = await replace_twice(driver)
        draft = await driver.draft(PATH, [BIG, b"!"])
        assert draft is not None
        (begun,) = (tmp_path / "repo").glob(".index.json.*.tmp")
        inode = begun.stat().st_ino
        assert await draft.finish(b"?", version) == (await driver.stat(PATH)).version
        assert (tmp_path / PATH).stat().st_ino == inode

    asyncio.run(run())
    assert (tmp_path / PATH).read_bytes() == BIG + b"!?"
    assert os.listdir(tmp_path / "repo") == ["index.json"]
    wait_until(lambda: deleted_files_held() == 0, timeout=10)


def test_a_forked_process_lets_its_old_files_go_too(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    asyncio.run(replace_twice(driver))  # the parent's releaser thread is running now
    pid = os.fork()
    if pid == 0:  # the child: its own releaser, or the descriptors would stay open
        code = 1
        try:
            asyncio.run(replace_twice(FilesystemDriver(tmp_path / "child")))
            wait_until(lambda: deleted_files_held() == 0, timeout=10)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
