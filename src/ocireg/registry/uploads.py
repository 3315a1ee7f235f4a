"""Upload sessions: stored under `<repo>/.uploads/<id>`, so any worker process (and, on shared
storage, any member) can continue a session that another one started.

Hashing happens while bytes arrive. OpenSSL 3 hash states cannot be saved (`rehash` refuses
OpenSSL 3) and the resumable pure-C SHA-256 we measured hashes several times slower than
hashlib (docs/performance.md, "Blob push"), so each process keeps the running hash of the
sessions it served last; when a session continues in another process, or with another
algorithm, the digest is verified by re-reading the bytes once at commit. Either way nothing
becomes visible unverified.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ocireg.digest import Digest, Hasher, new_hasher
from ocireg.errors import ErrorCode, RegistryError
from ocireg.lane import Lane
from ocireg.registry import layout
from ocireg.registry.faults import boundary
from ocireg.registry.locks import LocalLocks, LockBusy
from ocireg.registry.repos import Repositories
from ocireg.storage import FileWriter, PathNotFound, SessionStore, StorageError

WRITE_CHUNK = 1 << 20  # hand on received bytes in ~1 MiB batches: few thread hops
INLINE_HASH = 256 << 10  # smaller (last) pieces: hashed inline, cheaper than a thread hop
_SESSION_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RUNNING_HASH_ALG = "sha256"


log = logging.getLogger("ocireg.registry")


@dataclass
class _RunningHash:
    offset: int
    hasher: Hasher


@boundary
class Uploads:
    def __init__(
        self,
        sessions: SessionStore,
        locks: LocalLocks,
        repos: Repositories,
        max_hashes: int = 256,
        stored: Callable[[str, Digest], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.locks = locks
        self.repos = repos
        self.max_hashes = max_hashes
        self.stored = stored or _nothing  # told of each blob made visible (BlobStore.stored)
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()
        self._aborts: set[asyncio.Task[None]] = set()  # cancels waiting for a PATCH (`cancel`)

    async def start(self, repo: str) -> str:
        await self.repos.ensure(repo)
        session = str(uuid.uuid4())
        await self.sessions.create(layout.upload(repo, session))
        return session

    async def size(self, repo: str, session: str, ending: bool = False) -> int:
        path = self._path(repo, session)
        try:
            return await self.sessions.size(path, ending)
        except PathNotFound:
            raise self._unknown(session) from None

    async def append(
        self,
        repo: str,
        session: str,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append `body`; with `start` (from Content-Range) it must be where the session ends.
        With `length` (from Content-Range too) the chunk is all or nothing: a body of another
        length, or one that fails midway, leaves the session exactly as it was."""
        self._path(repo, session)  # a malformed id is unknown before any lock is taken
        async with self.locks.upload(session):
            return await self._append(repo, session, body, start, length)

    async def put(self, repo: str, digest: Digest, body: AsyncIterator[bytes]) -> int:
        """A whole blob whose digest came first (end-4b, POST ?digest=): no session is
        opened; the bytes go straight to the blob's place. Returns its size."""
        await self.repos.ensure(repo)
        session = str(uuid.uuid4())
        # Held as an upload session's is: garbage collection leaves a locked session alone,
        # and on S3 this one's state is written once, at its first part, so its age says
        # nothing of whether bytes still arrive.
        async with self.locks.upload(session):
            return await self._direct(repo, session, digest, body)

    async def complete(
        self,
        repo: str,
        session: str,
        digest: Digest,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append the last bytes, verify `digest`, and make the blob visible. Returns its size.
        `start` and `length`, from a Content-Range, as for `append`."""
        path = self._path(repo, session)
        async with self.locks.upload(session):
            # Clients that sent the bytes with PATCH send this PUT without a body (skopeo,
            # podman, docker, crane): no writer then, which on S3 would read and rewrite
            # the session's state for nothing. The body's first bytes are awaited before
            # the size: what `ending=True` lets the store keep is for the session call that
            # comes next, and a client gone in between would leave it to a later request.
            rest = await _unless_empty(body)
            # A range to check may refuse this PUT here: then no state may be kept for it
            # (`ending`). A range of no bytes says nothing.
            check = start if rest is not None else None
            current = await self.size(repo, session, ending=check is None)
            if check is not None and check != current:
                raise _not_at_the_end(current, check)
            if current == 0:
                # Nothing received before this PUT: its body is the whole blob, and its
                # digest is known, so it goes straight to the blob's place.
                self._hashes.pop(session, None)
                # (`body` when it had no bytes: drained, a blob of none)
                return await self._direct(repo, session, digest, body if rest is None else rest)
            if rest is None:
                size = current
            else:
                size = await self._append(repo, session, rest, None, length)
            actual = await self._digest_of(path, session, size, digest.algorithm)
            if actual != digest.hex:
                await self._discard(path, session)
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    detail={"expected": str(digest), "actual": f"{digest.algorithm}:{actual}"},
                )
            # Replace even when the blob is already there: the same bytes, and a fresh
            # modification time, so garbage collection's gcDelay protects this push too.
            self._hashes.pop(session, None)
            await self.sessions.finish(path, layout.blob(repo, digest))
        await self.stored(repo, digest)
        return size

    async def cancel(self, repo: str, session: str) -> None:
        path = self._path(repo, session)
        try:
            async with self.locks.upload(session, wait=False):
                try:
                    await self.sessions.abort(path)
                except PathNotFound:
                    raise self._unknown(session) from None
                self._hashes.pop(session, None)
            return
        except LockBusy:
            pass
        # A request is writing to the session (a PATCH, for as long as its client sends):
        # the cancel is answered now, as zot answers it, and the session goes when that
        # request lets it go.
        try:
            await self.sessions.size(path)
        except PathNotFound:
            raise self._unknown(session) from None
        task = asyncio.create_task(self._abort_when_free(path, session))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    async def _abort_when_free(self, path: str, session: str) -> None:
        try:
            async with self.locks.upload(session):
                with contextlib.suppress(PathNotFound):  # finished or cancelled meanwhile
                    await self.sessions.abort(path)
                self._hashes.pop(session, None)
        except StorageError as exc:  # left to expire: garbage collection removes it
            log.warning("upload session not cancelled", extra={"path": path, "error": str(exc)})

    # --- internals --------------------------------------------------------------------

    async def _direct(
        self, repo: str, session: str, digest: Digest, body: AsyncIterator[bytes]
    ) -> int:
        """Stream `body` to the blob's place, hashing it on the way; it becomes visible only
        after the digest matched (`commit`); on a mismatch nothing appears there. On S3 this
        saves the session's multipart upload and the server-side copy to the blob's key."""
        running = _RunningHash(0, new_hasher(digest.algorithm))
        sha256 = digest.hex if digest.algorithm == "sha256" else None
        path = layout.upload(repo, session)
        writer = await self.sessions.direct(path, layout.blob(repo, digest), sha256)
        try:
            await self._stream_into(writer, body, running)
            actual = running.hasher.hexdigest()
            if actual != digest.hex:
                await writer.rollback()
                await writer.close()
                await self._discard(path, session)  # as for any upload: the session ends
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    detail={"expected": str(digest), "actual": f"{digest.algorithm}:{actual}"},
                )
            await writer.commit()
            await self.stored(repo, digest)
            return writer.size
        finally:
            await writer.close()

    def _path(self, repo: str, session: str) -> str:
        if not _SESSION_RE.fullmatch(session):
            raise self._unknown(session)
        return layout.upload(repo, session)

    @staticmethod
    def _unknown(session: str) -> RegistryError:
        return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"session": session[:100]})

    async def _append(
        self,
        repo: str,
        session: str,
        body: AsyncIterator[bytes],
        start: int | None,
        length: int | None,
    ) -> int:
        path = self._path(repo, session)
        try:
            writer = await self.sessions.open(path)
        except PathNotFound:
            raise self._unknown(session) from None
        try:
            size = writer.size
            if start is not None and start != size:
                raise _not_at_the_end(size, start)
            running = self._hashes.pop(session, None)
            if running is None or running.offset != size:
                running = _RunningHash(0, new_hasher(_RUNNING_HASH_ALG)) if size == 0 else None
            if length is not None:
                body = _exactly(body, length)
            try:
                await self._stream_into(writer, body, running)
                await writer.commit()
            except BaseException as exc:
                running = None  # the file may hold bytes the hash has not seen
                if length is not None:
                    with contextlib.suppress(Exception):
                        await writer.rollback()
                if isinstance(exc, _LengthMismatch):
                    raise RegistryError(
                        ErrorCode.RANGE_INVALID,
                        "chunk length differs from its Content-Range",
                        {"declared": length, "received": exc.received, "size": size},
                    ) from None
                raise
            finally:
                if running is not None:
                    running.offset = writer.size
                    self._remember(session, running)
            return writer.size
        finally:
            await writer.close()

    async def _stream_into(
        self, writer: FileWriter, body: AsyncIterator[bytes], running: _RunningHash | None
    ) -> None:
        # Received pieces are handed on in batches of ~1 MiB, not joined: the writer writes
        # a batch with one writev, and the hash lane (from the first full batch on) hashes
        # it on a thread of its own while the next bytes arrive.
        lane: Lane | None = None
        batch: list[bytes] = []
        batch_size = 0
        try:
            async for chunk in body:
                if not chunk:
                    continue
                batch.append(chunk)
                batch_size += len(chunk)
                if batch_size >= WRITE_CHUNK:
                    if running is not None:
                        lane = lane or Lane("ocireg-hash")
                        await lane.submit(functools.partial(_hash_all, running.hasher, batch))
                    await writer.write(batch)
                    batch, batch_size = [], 0
            if batch:
                if running is not None:
                    await self._hash_last(running.hasher, batch, batch_size, lane)
                await writer.write(batch)
            if lane is not None:
                await lane.drain()
        finally:
            if lane is not None:
                lane.close()

    @staticmethod
    async def _hash_last(hasher: Hasher, batch: list[bytes], size: int, lane: Lane | None) -> None:
        if lane is not None:  # behind the batches already queued there
            await lane.submit(functools.partial(_hash_all, hasher, batch))
        elif size <= INLINE_HASH:  # a small body: a thread hop would cost more
            _hash_all(hasher, batch)
        else:
            await asyncio.to_thread(_hash_all, hasher, batch)

    def _remember(self, session: str, running: _RunningHash) -> None:
        self._hashes[session] = running
        while len(self._hashes) > self.max_hashes:
            self._hashes.popitem(last=False)

    async def _digest_of(self, path: str, session: str, size: int, algorithm: str) -> str:
        running = self._hashes.pop(session, None)
        if running is not None and running.offset == size and algorithm == _RUNNING_HASH_ALG:
            return running.hasher.hexdigest()
        hasher = new_hasher(algorithm)
        async for chunk in self.sessions.read(path):
            await asyncio.to_thread(hasher.update, chunk)
        return hasher.hexdigest()

    async def _discard(self, path: str, session: str) -> None:
        self._hashes.pop(session, None)
        with contextlib.suppress(PathNotFound):
            await self.sessions.abort(path)


def _not_at_the_end(size: int, start: int) -> RegistryError:
    return RegistryError(
        ErrorCode.UPLOAD_RANGE_INVALID,
        "chunk does not start where the upload ends",
        {"expected_start": size, "got_start": start, "size": size},
    )


class _LengthMismatch(Exception):
    def __init__(self, received: str) -> None:
        super().__init__(received)
        self.received = received


async def _exactly(body: AsyncIterator[bytes], length: int) -> AsyncIterator[bytes]:
    """`body`, if it is `length` bytes long; else _LengthMismatch, raised before any byte
    past `length` is handed on."""
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if seen > length:
            raise _LengthMismatch(f"more than {length}")
        yield chunk
    if seen != length:
        raise _LengthMismatch(str(seen))


async def _unless_empty(body: AsyncIterator[bytes]) -> AsyncIterator[bytes] | None:
    """`body` whole, or None when it ends without a byte."""
    async for chunk in body:
        if chunk:
            return _after(chunk, body)
    return None


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _hash_all(hasher: Hasher, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


async def _nothing(repo: str, digest: Digest) -> None:
    return None
