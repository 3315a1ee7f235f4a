"""The storage-driver contract.

Paths are relative, `/`-separated strings under the driver's root (`repo/blobs/sha256/ab..`).
Drivers raise `PathNotFound`, `InvalidPath` or `StorageUnavailable`; the registry layer is
the one place that turns those into OCI error codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class StorageError(Exception):
    """Base of the driver errors."""


class PathNotFound(StorageError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"path not found: {path}")


class InvalidPath(StorageError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"invalid path: {path!r}")


class StorageUnavailable(StorageError):
    """The backend cannot be reached or failed; requests get 503."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    mtime: float
    is_dir: bool = False
    # Changes whenever the content may have changed (inode+mtime on disk, ETag on S3):
    # the key for caches of parsed objects such as index.json.
    version: str = ""


class FileWriter(Protocol):
    """Appends to one file; the bytes are durable (and visible at `path`) after `commit`."""

    @property
    def size(self) -> int:
        """Bytes in the file so far, including what was there before this writer opened."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> None:
        """Flush (and, when the driver is configured to, fsync) what was written."""
        ...

    async def close(self) -> None: ...


class StorageDriver(Protocol):
    name: str

    async def get_content(self, path: str) -> bytes:
        """The whole object; for small objects (manifests, index.json) only."""
        ...

    async def put_content(self, path: str, data: bytes) -> None:
        """Replace the object atomically: readers see the old or the new bytes, never a mix."""
        ...

    async def stat(self, path: str) -> FileInfo: ...

    async def list(self, path: str) -> list[str]:
        """Sorted names of the direct children of a directory ("" is the root); names of
        directories end with "/" (on S3: common prefixes). PathNotFound if it has none."""
        ...

    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory tree; PathNotFound if absent."""
        ...

    async def move(self, src: str, dst: str) -> None:
        """Move `src` to `dst` atomically, replacing `dst`."""
        ...

    async def copy(self, src: str, dst: str) -> None:
        """Make `dst` hold the bytes of `src` (a hard link or server-side copy where possible)."""
        ...

    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream `length` bytes (all when None) from `offset` in bounded chunks."""
        ...

    async def writer(self, path: str, append: bool = False) -> FileWriter: ...

    def local_path(self, path: str) -> str | None:
        """A filesystem path for zero-copy responses, or None when the bytes are remote."""
        ...

    async def health(self) -> None:
        """Raise StorageUnavailable when the backend cannot serve requests."""
        ...

    async def close(self) -> None: ...
