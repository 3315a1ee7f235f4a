"""The storage-driver contract: bytes and paths, nothing about registries. Upload sessions
are a store of their own above it (`storage.sessions`).

Paths are relative, `/`-separated strings under the driver's root (`repo/blobs/sha256/ab..`).
Drivers raise `PathNotFound`, `InvalidPath` or `StorageUnavailable`; the registry layer is
the one place that turns those into OCI error codes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol

# A file's bytes given in pieces, in order: a driver writes them as if joined, and may avoid
# the join (the filesystem writes them with `writev`; index.json at 10,000 tags is 2 MB
# whose pieces are mostly views of a text kept between writes).
Pieces = bytes | list[bytes | memoryview]


def joined(data: Pieces) -> bytes:
    return data if isinstance(data, bytes) else b"".join(data)


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
    # When the file last got a new name, if later than `mtime` (a hard link renews the
    # inode's ctime, not its mtime): garbage collection counts a blob mounted moments ago as
    # young. 0 where a new name is a new object (S3: a copy renews LastModified).
    renamed: float = 0.0


class FileWriter(Protocol):
    """Appends to one file; the bytes are durable (and visible at `path`) after `commit`."""

    @property
    def size(self) -> int:
        """Bytes in the file, counting what `write` accepted and what was there before."""
        ...

    async def write(self, pieces: list[bytes]) -> None:
        """Append the pieces, in order. May return before they reach storage (the caller
        goes on receiving); a failure is then raised by a later `write` or by `commit`.
        The list is the writer's from then on: the caller does not change it."""
        ...

    async def commit(self) -> None:
        """Wait for every write; flush (and, when the driver is configured to, fsync)."""
        ...

    async def rollback(self) -> None:
        """Instead of `commit`: forget what this writer appended, leaving the file exactly as
        it was when opened (a chunk whose length did not match what the client declared).
        Only `close` follows."""
        ...

    async def close(self) -> None: ...


class Draft(Protocol):
    """The next version of a file whose beginning is written before its end is known
    (`StorageDriver.draft`). Finished or discarded exactly once."""

    async def finish(self, rest: Pieces, version: str | None) -> str | None:
        """`put_if` of the beginning followed by `rest`."""
        ...

    async def discard(self) -> None: ...


class StorageDriver(Protocol):
    name: str
    # Called with the operation's name ("HeadObject", "GetObject", ...) for each request the
    # driver sends to a remote backend (the metrics count them); the filesystem sends none.
    on_request: Callable[[str], None] | None

    async def get_content(self, path: str) -> bytes:
        """The whole object; for small objects (manifests, index.json) only."""
        ...

    async def put_content(self, path: str, data: bytes) -> None:
        """Replace the object atomically: readers see the old or the new bytes, never a mix."""
        ...

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        """The whole object and its version (as `stat` reports it), read together."""
        ...

    async def put_if(self, path: str, data: Pieces, version: str | None) -> str | None:
        """Replace the object only if its version is still `version` (None: only if it does
        not exist); the new version (as `stat` will report it), or None when another writer
        got there first. On disk the caller holds the repository's file lock; on S3 this is
        a conditional PUT (If-Match/If-None-Match)."""
        ...

    async def draft(self, path: str, beginning: Pieces) -> Draft | None:
        """Start writing the next version of `path` with its first bytes, so that a large
        file whose last bytes are still being decided is mostly written by the time they
        are (registry/writer.py); None when the driver would not gain by it (an object
        store writes an object whole) or could not start."""
        ...

    async def stat(self, path: str, files_only: bool = False) -> FileInfo:
        """Size, mtime, directory or not, `version` (for caches) and `renamed` (for the age
        garbage collection gives a blob); PathNotFound if absent. With `files_only` a
        directory is PathNotFound too: callers that look for a file say so, and S3 then
        answers with one HEAD, without the listing that finds a "directory"."""
        ...

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

    async def share(self, src: str, dst: str) -> bool:
        """Make `dst`, which holds the same bytes as `src`, the same stored object as `src`
        without copying (a hard link), so that they are kept once; False where the storage
        cannot (S3, another device, `src` gone, sizes that differ)."""
        ...

    def reader(
        self, path: str, offset: int = 0, length: int | None = None, piece_size: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Stream `length` bytes (all when None) from `offset` in bounded chunks; of at most
        `piece_size` bytes when given and the backend chooses its reads (a local file)."""
        ...

    async def sized_reader(self, path: str) -> tuple[int, AsyncGenerator[bytes, None]]:
        """The file's size and all its bytes (as `reader` gives them), asked for together:
        on S3 one GET, where `stat` then `reader` are two requests. PathNotFound if absent
        (a directory too). The caller closes the stream (`aclose`), read or not."""
        ...

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer of a new object at `path`, visible there after `commit`. With `append`
        the writer resumes instead: it continues what a writer committed at `path` before,
        possibly in another process (PathNotFound if nothing). On disk that is the file
        itself. An S3 object cannot grow, so there `append` continues an object still being
        written (`s3/state.py`, what an upload session keeps between requests), whose bytes
        become an object only when the session store finishes it."""
        ...

    def local_path(self, path: str) -> str | None:
        """A filesystem path for zero-copy responses, or None when the bytes are remote."""
        ...

    async def download_url(self, path: str) -> str | None:
        """A short-lived URL from which a client can GET the object itself, without
        credentials (blob redirects), or None when the backend has no such URL."""
        ...

    async def health(self) -> None:
        """Raise StorageUnavailable when the backend cannot serve requests."""
        ...

    async def close(self) -> None: ...
