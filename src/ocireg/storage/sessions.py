"""Upload sessions: bytes appended over several requests, possibly by different processes or
members, then made visible at a blob's path. A store of their own above the driver, so the
driver stays bytes and paths: `FileSessions` (a session is a plain file, built on the
driver's primitives) for the filesystem, `S3Sessions` (a multipart upload and its
bookkeeping) for S3; `factory.create_storage` builds the pair.

Paths are the driver's (`<repo>/.uploads/<id>`, chosen by the registry layer). The caller
holds the session's lock (`registry/locks.py`) for every call on an existing session; a
session is never used by two requests at once.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from ocireg.storage.base import FileInfo, FileWriter, PathNotFound, StorageDriver


class SessionStore(Protocol):
    async def create(self, path: str) -> None:
        """Open an empty session at `path`."""
        ...

    async def size(self, path: str, ending: bool = False) -> int:
        """Bytes received so far; PathNotFound for an unknown session. `ending`: asked by
        the final PUT, whose `finish` or `abort` follows in this process: a store may read
        more than the size now and keep it for them (S3: the state with its bytes, one GET
        where a HEAD and then a GET would be two). The caller's next call on the session
        (under the same lock) takes what was kept, so nothing that can fail comes between:
        a kept state left over would be stale by the session's next call here."""
        ...

    async def open(self, path: str) -> FileWriter:
        """A writer that appends; what `commit` stored survives the process."""
        ...

    def read(self, path: str) -> AsyncIterator[bytes]:
        """Every byte of the session (to verify a digest); no more appends after this."""
        ...

    async def finish(self, path: str, dst: str) -> None:
        """Make `dst` hold the session's bytes and end the session."""
        ...

    async def direct(self, path: str, dst: str, sha256: str | None = None) -> FileWriter:
        """A writer for a blob whose digest is known before its bytes: the session at `path`
        holds no bytes (or does not exist), and the bytes go to `dst` as directly as the
        backend allows. Nothing is visible at `dst` before `commit`, which also ends the
        session. After `rollback` or a `close` without `commit`, `dst` is as it was, and a
        session that was open is still open (holding no more than what was written), one
        that was not is not. If `dst` exists already the store may keep it (blobs are
        written only verified: same bytes). `sha256` (hex), the content's expected SHA-256,
        lets a backend check the bytes it stores as well."""
        ...

    async def abort(self, path: str) -> None:
        """End the session and drop its bytes; PathNotFound if unknown."""
        ...

    async def list(self, directory: str) -> builtins.list[FileInfo]:
        """The sessions directly under `directory`, each with the time it was last written
        (`mtime`); empty when there are none. Garbage collection finds idle sessions here."""
        ...

    async def expire(self, path: str, before: float) -> bool:
        """End the session at `path` and drop its bytes if nothing was written to it after
        `before`; True if something was removed."""
        ...


class FileSessions:
    """A session is a plain file, appended in place (`writer(append=True)`) and moved into
    place at the end: one atomic rename on disk, no copy."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def create(self, path: str) -> None:
        await self.driver.put_content(path, b"")

    async def size(self, path: str, ending: bool = False) -> int:
        return (await self.driver.stat(path)).size

    async def open(self, path: str) -> FileWriter:
        return await self.driver.writer(path, append=True)

    def read(self, path: str) -> AsyncIterator[bytes]:
        return self.driver.reader(path)

    async def finish(self, path: str, dst: str) -> None:
        await self.driver.move(path, dst)

    async def direct(self, path: str, dst: str, sha256: str | None = None) -> FileWriter:
        # The session's file (created if the client opened none) is written and moved
        # into place: the same atomic rename as every upload, and no copy on disk.
        try:
            writer, was_open = await self.driver.writer(path, append=True), True
        except PathNotFound:  # no session opened: a file for this request alone
            writer, was_open = await self.driver.writer(path), False
        return _MovingWriter(writer, self.driver, path, dst, was_open)

    async def abort(self, path: str) -> None:
        await self.driver.delete(path)

    async def list(self, directory: str) -> builtins.list[FileInfo]:
        try:
            names = await self.driver.list(directory)
        except PathNotFound:
            return []
        found = []
        for name in names:  # sorted
            if name.startswith(".") or name.endswith("/"):
                continue
            path = f"{directory}/{name}"
            with contextlib.suppress(PathNotFound):  # ended meanwhile
                info = await self.driver.stat(path)
                # Every append renews the file's mtime: the time of the last write.
                found.append(FileInfo(path, info.size, info.mtime))
        return found

    async def expire(self, path: str, before: float) -> bool:
        try:
            if (await self.driver.stat(path)).mtime > before:
                return False
            await self.driver.delete(path)
        except PathNotFound:
            return False
        return True


class _MovingWriter:
    """Writes a session's file and, at `commit`, moves it to its destination (`direct`).
    Without `commit`, a session the client had opened keeps what was written, as after any
    interrupted request, and a file made for no session goes."""

    def __init__(
        self, writer: FileWriter, driver: StorageDriver, path: str, dst: str, was_open: bool
    ) -> None:
        self._writer = writer
        self._driver = driver
        self._path = path
        self._dst = dst
        self._moved = was_open  # nothing to remove at close

    @property
    def size(self) -> int:
        return self._writer.size

    async def write(self, pieces: list[bytes]) -> None:
        await self._writer.write(pieces)

    async def commit(self) -> None:
        await self._writer.commit()
        await self._driver.move(self._path, self._dst)
        self._moved = True

    async def rollback(self) -> None:
        await self._writer.rollback()

    async def close(self) -> None:
        await self._writer.close()
        if not self._moved:
            self._moved = True
            with contextlib.suppress(PathNotFound):
                await self._driver.delete(self._path)
