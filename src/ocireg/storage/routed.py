"""One driver over several (zot's `storage.subPaths`), choosing by a path's first component.

Every path of zot's layout starts with the repository's name (registry/layout.py), and zot
picks a repository's storage by the first component of a name of two components or more, so
a path's first component picks the driver: a sub path's for `team/app/...` when `/team` is
one, the default's otherwise (its `.ocireg/` too). The repository `team` itself stays with
the default: its paths are `team/` followed by one of the entries a repository's directory
holds (`entries`: index.json, blobs...), which is how they are told apart. Listings join the
drivers: the root's has the default's names and each sub path's own, `team/`'s the default's
entries of the repository `team` and the sub path's repositories. A move, copy or link
between two drivers is rare (a mount from a repository of another sub path): bytes are
copied, and never linked. The drivers may be of both kinds (a sub path on S3 under a default
on disk, or the reverse); upload sessions then go to the session store of the driver that
holds the repository (`RoutedSessions`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from ocireg.storage.base import (
    Draft,
    FileInfo,
    FileWriter,
    PathNotFound,
    Pieces,
    StorageDriver,
)
from ocireg.storage.sessions import SessionStore


class RoutedDriver:
    def __init__(
        self, default: StorageDriver, routes: dict[str, StorageDriver], entries: frozenset[str]
    ) -> None:
        """`routes`: first name component -> its driver (several may share one)."""
        self.default = default
        self.routes = routes
        self.entries = entries
        self._drivers = list({id(d): d for d in (default, *routes.values())}.values())
        self.name = default.name

    @property
    def drivers(self) -> list[StorageDriver]:
        """Each driver once, the default's first."""
        return self._drivers

    def pick(self, path: str) -> StorageDriver:
        first, _, rest = path.partition("/")
        second = rest.partition("/")[0]
        if not second or second in self.entries:
            return self.default  # the root's own, or the one-component repository's
        return self.routes.get(first, self.default)

    @property
    def on_request(self) -> Callable[[str], None] | None:
        return self.default.on_request

    @on_request.setter
    def on_request(self, value: Callable[[str], None] | None) -> None:
        for driver in self._drivers:
            driver.on_request = value

    async def get_content(self, path: str) -> bytes:
        return await self.pick(path).get_content(path)

    async def put_content(self, path: str, data: bytes) -> None:
        await self.pick(path).put_content(path, data)

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        return await self.pick(path).get_versioned(path)

    async def put_if(self, path: str, data: Pieces, version: str | None) -> str | None:
        return await self.pick(path).put_if(path, data, version)

    async def draft(self, path: str, beginning: Pieces) -> Draft | None:
        return await self.pick(path).draft(path, beginning)

    async def stat(self, path: str, files_only: bool = False) -> FileInfo:
        return await self.pick(path).stat(path, files_only)

    async def list(self, path: str) -> list[str]:
        top = path.strip("/")
        if (top and "/" in top) or (top and top not in self.routes):
            return await self.pick(path).list(path)
        if top:  # `team`: the repository `team`'s entries, and the repositories below it
            sub = self.routes[top]
            names = {n for n in await _listed(self.default, path) if n.strip("/") in self.entries}
            names.update(n for n in await _listed(sub, path) if n.strip("/") not in self.entries)
        else:
            names = set(await _listed(self.default, path))
            for route, driver in self.routes.items():
                names.update(n for n in await _listed(driver, path) if n == f"{route}/")
        if not names:
            raise PathNotFound(path)
        return sorted(names)

    async def delete(self, path: str) -> None:
        await self.pick(path).delete(path)

    async def move(self, src: str, dst: str) -> None:
        if self.pick(src) is self.pick(dst):
            await self.pick(src).move(src, dst)
            return
        await self._copy_across(src, dst)
        await self.pick(src).delete(src)

    async def copy(self, src: str, dst: str) -> None:
        if self.pick(src) is self.pick(dst):
            await self.pick(src).copy(src, dst)
        else:
            await self._copy_across(src, dst)

    async def _copy_across(self, src: str, dst: str) -> None:
        """The bytes of `src` at `dst`, another driver's: written beside it under a
        temporary name and moved into place once whole, so that `dst` is never seen (nor
        left by a crash) holding part of them."""
        target = self.pick(dst)
        folder, _, name = dst.rpartition("/")
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp".lstrip("/")
        writer = await target.writer(tmp)
        try:
            try:
                stream = self.pick(src).reader(src)
                async with contextlib.aclosing(stream):
                    async for chunk in stream:
                        await writer.write([chunk])
                await writer.commit()
            finally:
                await writer.close()
            await target.move(tmp, dst)
        except BaseException:
            with contextlib.suppress(PathNotFound):
                await target.delete(tmp)
            raise

    async def share(self, src: str, dst: str) -> bool:
        if self.pick(src) is not self.pick(dst):
            return False  # two roots: possibly two devices, and never one store in zot
        return await self.pick(src).share(src, dst)

    def reader(
        self, path: str, offset: int = 0, length: int | None = None, piece_size: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        return self.pick(path).reader(path, offset, length, piece_size)

    async def sized_reader(self, path: str) -> tuple[int, AsyncGenerator[bytes, None]]:
        return await self.pick(path).sized_reader(path)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        return await self.pick(path).writer(path, append)

    def local_path(self, path: str) -> str | None:
        return self.pick(path).local_path(path)

    async def download_url(self, path: str) -> str | None:
        return await self.pick(path).download_url(path)

    async def health(self) -> None:
        await asyncio.gather(*(driver.health() for driver in self._drivers))

    async def close(self) -> None:
        for driver in self._drivers:
            await driver.close()


async def _listed(driver: StorageDriver, path: str) -> list[str]:
    try:
        return await driver.list(path)
    except PathNotFound:
        return []


class RoutedSessions:
    """The upload sessions of a `RoutedDriver`: a session (`<repo>/.uploads/<id>`) is kept
    by the session store of the driver its repository's paths go to, so that its bytes end
    where the blob will be (a multipart upload in the sub path's bucket, a file in its
    root). A session is finished into its own repository: never across two drivers."""

    def __init__(self, driver: RoutedDriver, stores: dict[int, SessionStore]) -> None:
        """`stores`: id of each of `driver.drivers` -> its session store."""
        self.driver = driver
        self.stores = stores

    def pick(self, path: str) -> SessionStore:
        return self.stores[id(self.driver.pick(path))]

    async def create(self, path: str) -> None:
        await self.pick(path).create(path)

    async def size(self, path: str, ending: bool = False) -> int:
        return await self.pick(path).size(path, ending)

    async def open(self, path: str) -> FileWriter:
        return await self.pick(path).open(path)

    def read(self, path: str) -> AsyncIterator[bytes]:
        return self.pick(path).read(path)

    async def finish(self, path: str, dst: str) -> None:
        await self.pick(path).finish(path, dst)

    async def direct(self, path: str, dst: str, sha256: str | None = None) -> FileWriter:
        return await self.pick(path).direct(path, dst, sha256)

    async def abort(self, path: str) -> None:
        await self.pick(path).abort(path)

    async def list(self, directory: str) -> builtins.list[FileInfo]:
        return await self.pick(directory).list(directory)

    async def expire(self, path: str, before: float) -> bool:
        return await self.pick(path).expire(path, before)
