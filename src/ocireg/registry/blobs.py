"""Blobs of a repository: look-up, streaming, mounting from another repository, deletion."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import layout
from ocireg.registry.repos import Repositories
from ocireg.storage import FileInfo, PathNotFound, StorageDriver


class BlobStore:
    def __init__(self, driver: StorageDriver, repos: Repositories) -> None:
        self.driver = driver
        self.repos = repos

    async def stat(self, repo: str, digest: Digest) -> FileInfo:
        try:
            info = await self.driver.stat(layout.blob(repo, digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
        if info.is_dir:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return info

    async def exists(self, repo: str, digest: Digest) -> bool:
        try:
            await self.stat(repo, digest)
        except RegistryError:
            return False
        return True

    def local_path(self, repo: str, digest: Digest) -> str | None:
        return self.driver.local_path(layout.blob(repo, digest))

    def read(
        self, repo: str, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.driver.reader(layout.blob(repo, digest), offset, length)

    async def get_small(self, repo: str, digest: Digest) -> bytes:
        try:
            return await self.driver.get_content(layout.blob(repo, digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None

    async def put_small(self, repo: str, digest: Digest, data: bytes) -> None:
        await self.driver.put_content(layout.blob(repo, digest), data)

    async def mount(self, repo: str, source_repo: str, digest: Digest) -> bool:
        """Make `digest` from `source_repo` available in `repo`; False if the source lacks it."""
        if not await self.exists(source_repo, digest):
            return False
        await self.repos.ensure(repo)
        if not await self.exists(repo, digest):
            try:
                await self.driver.copy(layout.blob(source_repo, digest), layout.blob(repo, digest))
            except PathNotFound:
                return False
        return True

    async def delete(self, repo: str, digest: Digest) -> None:
        try:
            await self.driver.delete(layout.blob(repo, digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
