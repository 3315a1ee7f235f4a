"""Per-repository and per-upload locks that hold across the worker processes of an instance.

In a cluster one member owns each repository, so a lock local to the machine is enough;
`flock` covers the Granian worker processes, an asyncio lock the coroutines of one process
(so waiting coroutines do not each occupy a thread).

A lock file exists only while its lock is held: the holder unlinks it before letting go, so
requests naming sessions or repositories that do not exist leave nothing behind. A waiter
that then gets the lock on the unlinked file sees that its path no longer names that file and
tries again with a fresh one, so two holders never lock different files for one key.

A holder may leave a note in its lock file for the processes that find the lock taken: the
index writer (registry/writer.py) notes where it takes other workers' tag writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ocireg.storage import StorageUnavailable

NOTE_MAX = 256


class LockBusy(Exception):
    """`try_hold` found the lock held by someone else."""


class LocalLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._local: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait: bool = True, note: bytes = b"") -> AsyncIterator[None]:
        """Hold the lock of `key`; with `wait=False`, raise LockBusy rather than wait.
        `note`: written into the lock file while it is held (see `note_of`)."""
        local = self._local.setdefault(key, asyncio.Lock())
        if not wait and local.locked():
            raise LockBusy(key)
        try:
            async with local:
                path = self._path(key)
                fd = await self._acquire(path, wait)
                try:
                    _write_note(fd, note)
                    yield
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)  # still held: nobody can lock this file after us
                    os.close(fd)  # closing the descriptor releases the flock
        finally:
            if not local.locked() and self._local.get(key) is local:
                del self._local[key]

    async def _acquire(self, path: Path, wait: bool) -> int:
        while True:
            fd = self._open(path)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not wait:
                        raise LockBusy(str(path)) from None
                    await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                if _same_file(fd, path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the previous holder unlinked it meanwhile: lock the new file

    def note_of(self, key: str) -> bytes:
        """What the holder of `key`'s lock noted (empty when nobody holds it or noted
        nothing). Only a hint: the holder may let go at any moment, and a holder that died
        leaves its note behind."""
        try:
            with open(self._path(key), "rb") as f:
                return f.read(NOTE_MAX)
        except OSError:
            return b""

    def _path(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.lock"

    def _open(self, path: Path) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageUnavailable(f"lock directory {self.directory}: {exc.strerror}") from exc

    def repo(
        self, name: str, wait: bool = True, note: bytes = b""
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self.hold(repo_key(name), wait, note)

    def upload(
        self, session: str, wait: bool = True
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self.hold(f"upload:{session}", wait)


def _write_note(fd: int, note: bytes) -> None:
    """`note` as the lock file's content. A holder that died leaves its note: cut what is
    left of it, and only then (truncating a file that has data makes ext4 flush it when it
    is closed, which costs more than the lock: docs/performance.md, "Tag writes at 10,000
    tags, third round")."""
    if note:
        os.pwrite(fd, note, 0)
    if os.fstat(fd).st_size > len(note):
        os.ftruncate(fd, len(note))


def repo_key(name: str) -> str:
    return f"repo:{name}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
