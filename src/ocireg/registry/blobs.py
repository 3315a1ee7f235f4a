"""Blobs of a repository: look-up, streaming, mounting from another repository, deletion."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from ocireg.digest import Digest, new_hasher
from ocireg.errors import ErrorCode, RegistryError
from ocireg.meta import MetaStore
from ocireg.meta.base import MetaUnavailable
from ocireg.registry import layout
from ocireg.registry.faults import boundary, mapped
from ocireg.registry.lately import Lately
from ocireg.registry.repos import Repositories
from ocireg.storage import FileInfo, PathNotFound, StorageDriver, StorageError

log = logging.getLogger("ocireg.blobs")

# Small blobs read by digest (manifests) are kept per process: the bytes of a digest never
# change, and callers reach them through index.json, which is checked on every request.
SMALL_CACHE_ITEM = 64 << 10
SMALL_CACHE_TOTAL = 32 << 20


def _stub(size: int, digest: Digest) -> bool:
    """A stored object of `size` bytes for `digest` is a zot dedupe stub: empty, for a digest
    that is not the empty blob's."""
    return size == 0 and digest.hex != new_hasher(digest.algorithm).hexdigest()


@dataclass(frozen=True, slots=True)
class Download:
    """A blob for a GET: its size, and all its bytes when it is small, else its pieces as
    the storage sends them (the taker closes them)."""

    size: int
    body: bytes | None = None
    pieces: AsyncGenerator[bytes, None] | None = None


@boundary
class BlobStore:
    """zot with dedupe on S3 leaves zero-byte stubs in repositories whose blob another
    repository holds; the holder is in zot's cache (Redis `<p>:blobs:original`, or bolt's
    cache.db beside zot). ocireg resolves a stub through the metadata store, which reads
    zot's Redis hash too, else by looking for a non-empty copy in the other repositories
    (remembered). ocireg itself never writes stubs: a mount is a server-side copy."""

    def __init__(
        self,
        driver: StorageDriver,
        repos: Repositories,
        meta: MetaStore,
        zot_root: str = "",
        dedupe: Callable[[str], str | None] = lambda repo: None,
    ) -> None:
        self.driver = driver
        # storage.dedupe: an upload of bytes kept elsewhere is linked. Per repository, its
        # dedupe area: the root whose copies it links to ("" the default, a sub path's
        # route), None where it keeps its own copy.
        self.dedupe = dedupe
        self.repos = repos
        self.meta = meta
        self.zot_root = zot_root.strip("/")
        self._stubs: dict[tuple[str, str], str] = {}  # (repo, digest) -> path holding bytes
        self._small: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._small_bytes = 0
        # Blobs found stored lately, for the first look a manifest put takes at its
        # references (`seen`). That look only spares the client a write that would fail; the
        # check that counts is made again against the storage under the repository lock. A
        # client tagging one image many times, or putting a manifest right after its blobs,
        # then needs no HEAD on S3.
        self._seen: Lately[tuple[str, str]] = Lately()

    async def stat(self, repo: str, digest: Digest) -> FileInfo:
        try:
            info = await self.driver.stat(layout.blob(repo, digest), files_only=True)
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
        if _stub(info.size, digest):
            info = await self._resolve_stub(repo, digest)
        self.saw(repo, digest)
        return info

    async def _resolve_stub(self, repo: str, digest: Digest) -> FileInfo:
        candidates: list[str] = []
        known = await self.meta.blob_location(str(digest))
        if known:
            candidates.append(self._ours(known))  # zot records image-store paths
        for path in candidates:
            info = await self._content(path)
            if info is not None:
                self._stubs[(repo, str(digest))] = path
                return info
        for other in await self.repos.catalog():
            path = layout.blob(other, digest)
            info = await self._content(path)
            if info is not None:
                await self.meta.set_blob_location(str(digest), path)
                self._stubs[(repo, str(digest))] = path
                return info
        raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})

    def _ours(self, recorded: str) -> str:
        """A path as zot's cache records it (`/<rootdirectory>/<repo>/blobs/...`) or as
        ocireg does (`<repo>/blobs/...`), in the form the driver takes."""
        path = recorded.lstrip("/")
        if self.zot_root and path.startswith(self.zot_root + "/"):
            path = path[len(self.zot_root) + 1 :]
        return path

    def _zots(self, path: str) -> str:
        return f"/{self.zot_root}/{path}" if self.zot_root else f"/{path}"

    async def before_delete(self, repo: str, digest: Digest, size: int | None = None) -> None:
        """Call before the bytes of `digest` in `repo` are deleted. zot with dedupe (on S3)
        leaves zero-byte stubs in other repositories that stand for these very bytes; if this
        is the copy they resolve to, the bytes are first copied over one of the stubs, which
        takes its place as the original (zot moves its original the same way), so that the
        other repositories keep their blob. Only for a digest that zot's cache records, or
        that ocireg resolved a stub of: for others nothing is asked of the storage. `size`:
        the object's, when the caller knows it."""
        path = layout.blob(repo, digest)
        if self.driver.local_path(path) is not None:
            return  # on local storage zot dedupes with hard links: no stubs
        recorded = [self._ours(p) for p in await self.meta.blob_copies(str(digest))]
        known = await self.meta.blob_location(str(digest))
        if path not in {*recorded, *([self._ours(known)] if known else [])}:
            return
        if size is None:
            size = (await self.driver.stat(path, files_only=True)).size
        if _stub(size, digest):
            return  # a stub itself: no bytes go with it
        if recorded:  # zot's cache lists every copy (this one included)
            others = [p for p in recorded if p != path]
        else:  # ocireg found these bytes for a stub once: where are the stubs?
            others = [layout.blob(r, digest) for r in await self.repos.catalog() if r != repo]
        self._stubs = {k: v for k, v in self._stubs.items() if v != path}
        stubs = []
        for other in others:
            try:
                info = await self.driver.stat(other, files_only=True)
            except PathNotFound:
                continue
            if not _stub(info.size, digest):  # another copy holds the bytes: point there
                await self.meta.moved_blob(str(digest), self._zots(path), self._zots(other))
                return
            stubs.append(other)
        if stubs:
            await self.driver.copy(path, stubs[0])
            await self.meta.moved_blob(str(digest), self._zots(path), self._zots(stubs[0]))

    async def _content(self, path: str) -> FileInfo | None:
        try:
            info = await self.driver.stat(path, files_only=True)
        except PathNotFound:
            return None
        return info if info.size > 0 else None

    def _path(self, repo: str, digest: Digest) -> str:
        return self._stubs.get((repo, str(digest))) or layout.blob(repo, digest)

    async def exists(self, repo: str, digest: Digest) -> bool:
        try:
            await self.stat(repo, digest)
        except RegistryError:
            return False
        return True

    async def stored(self, repo: str, digest: Digest) -> None:
        """An upload made `digest` visible in `repo`. With `dedupe` (zot's `storage.dedupe`,
        on local storage) the new file becomes a hard link of a copy another repository
        holds, as zot's dedupe makes it, so the bytes are kept once; else it is the copy the
        next upload of these bytes links to. Only uploads: a manifest keeps a file of its
        own, whose time is its push time in that repository (retention)."""
        self.saw(repo, digest)
        area = self.dedupe(repo)
        if area is None:
            return
        here = layout.blob(repo, digest)
        # a location per root: a link cannot join two (storage.subPaths)
        key = f"{area}/{digest}" if area else str(digest)
        try:
            recorded = await self.meta.blob_location(key)
            known = self._ours(recorded) if recorded else None  # zot's cache: absolute paths
            if known and known != here and await self.driver.share(known, here):
                return
            if known != here:
                await self.meta.set_blob_location(key, here)
        except (MetaUnavailable, StorageError) as exc:  # stored; only the sharing is missed
            log.warning("dedupe skipped", extra={"repo": repo, "error": str(exc)})

    def saw(self, repo: str, digest: Digest) -> None:
        """Note `digest` as stored in `repo` now (found, written, or mounted)."""
        self._seen.note((repo, str(digest)))

    async def seen(self, repo: str, digest: Digest) -> bool:
        """`exists`, or True if it was found stored lately (`Lately`). Only for a look that is
        repeated with `exists` before anything depends on it."""
        return (repo, str(digest)) in self._seen or await self.exists(repo, digest)

    def local_path(self, repo: str, digest: Digest) -> str | None:
        return self.driver.local_path(self._path(repo, digest))

    async def download_url(self, repo: str, digest: Digest) -> str | None:
        """A presigned URL of the blob's bytes (S3), or None. Call after `stat`, which
        checks that `repo` has the blob and resolves a zot dedupe stub to its bytes."""
        return await self.driver.download_url(self._path(repo, digest))

    async def read(
        self,
        repo: str,
        digest: Digest,
        offset: int = 0,
        length: int | None = None,
        piece_size: int | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The blob's bytes (in pieces of at most `piece_size` bytes, if given, where the driver
        chooses its reads); BLOB_UNKNOWN before the first piece if it has gone since a stat."""
        try:
            async with contextlib.aclosing(
                self.driver.reader(self._path(repo, digest), offset, length, piece_size)
            ) as pieces:
                async for piece in pieces:
                    yield piece
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None

    async def download(self, repo: str, digest: Digest) -> Download:
        """The whole blob for a GET, asked of the storage once: on S3 one GET gives the size
        and the bytes, where `stat` then `read` send a HEAD and a GET. A small blob comes
        whole (and is kept here); bytes kept already need only the look that the repository
        still has them. BLOB_UNKNOWN if it does not."""
        key = (repo, str(digest))
        if key in self._small:
            await self.stat(repo, digest)
            body = await self.get_small(repo, digest)
            return Download(len(body), body=body)
        try:
            try:
                size, pieces = await self.driver.sized_reader(self._path(repo, digest))
            except PathNotFound:
                if self._stubs.pop(key, None) is None:
                    raise
                # The bytes a stub stood for were moved (`before_delete`, maybe in another
                # process): the stub, read again below, is resolved again.
                size, pieces = await self.driver.sized_reader(self._path(repo, digest))
            if _stub(size, digest):
                await pieces.aclose()  # a dedupe stub: the bytes are elsewhere
                await self._resolve_stub(repo, digest)
                size, pieces = await self.driver.sized_reader(self._path(repo, digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
        self.saw(repo, digest)
        if size > SMALL_CACHE_ITEM:
            return Download(size, pieces=mapped(pieces))
        async with contextlib.aclosing(pieces):
            body = b"".join([piece async for piece in pieces])
        self._keep_small(key, body)
        return Download(size, body=body)

    async def get_small(self, repo: str, digest: Digest) -> bytes:
        key = (repo, str(digest))
        data = self._small.get(key)
        if data is not None:
            self._small.move_to_end(key)
            return data
        try:
            data = await self.driver.get_content(self._path(repo, digest))
            if _stub(len(data), digest):
                await self.stat(repo, digest)  # a dedupe stub: find the bytes
                data = await self.driver.get_content(self._path(repo, digest))
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
        self._keep_small(key, data)
        return data

    def _keep_small(self, key: tuple[str, str], data: bytes) -> None:
        if len(data) <= SMALL_CACHE_ITEM and key not in self._small:
            self._small[key] = data
            self._small_bytes += len(data)
            while self._small_bytes > SMALL_CACHE_TOTAL:
                self._small_bytes -= len(self._small.popitem(last=False)[1])

    def _forget(self, repo: str, digest: Digest) -> None:
        data = self._small.pop((repo, str(digest)), None)
        if data is not None:
            self._small_bytes -= len(data)

    async def put_small(self, repo: str, digest: Digest, data: bytes) -> None:
        await self.driver.put_content(layout.blob(repo, digest), data)
        self._keep_small((repo, str(digest)), data)  # read back soon: the pusher checks it
        self.saw(repo, digest)

    async def mount(self, repo: str, source_repo: str, digest: Digest) -> bool:
        """Make `digest` from `source_repo` available in `repo`; False if the source lacks it."""
        if not await self.exists(source_repo, digest):
            return False
        await self.repos.ensure(repo)
        if not await self.exists(repo, digest):
            try:
                # From where the bytes are: `exists` resolved a zot dedupe stub in the
                # source (a copy of the stub itself would be an empty object).
                await self.driver.copy(self._path(source_repo, digest), layout.blob(repo, digest))
            except PathNotFound:
                return False
            self.saw(repo, digest)
        return True

    async def delete(self, repo: str, digest: Digest) -> None:
        self._forget(repo, digest)
        self._seen.forget((repo, str(digest)))
        path = layout.blob(repo, digest)
        try:
            # A file, never a directory: the driver's delete removes whole trees, and a
            # directory here is what an older version let a repository name create.
            info = await self.driver.stat(path)
            if info.is_dir:
                raise PathNotFound(path)
            await self.before_delete(repo, digest, info.size)
            await self.driver.delete(path)
        except PathNotFound:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
