"""Copy one image from an upstream into the image store, through the store's own API.

The order makes a half-copied image invisible: blobs first (each through an upload session,
so its digest is verified before it gets its name), then the manifests an index lists (by
digest), then the manifest the client asked for, by its tag or digest. The store refuses a
manifest whose blobs or children are missing, so an interruption at any point leaves at most
unreferenced blobs, which garbage collection removes. Digests are kept: the bytes stored are
the upstream's bytes (zot's `preserveDigest`; ocireg never converts).

Referrers (signatures, SBOMs) follow the image: the upstream's referrers API where it has
one, and the fallback and cosign tags (`sha256-<hex>`, `.sig`, `.att`, `.sbom`; the cosign
ones unless `syncLegacyCosignTags` is false) either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from typing import Any

from ocireg import names
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry import ImageStore, layout
from ocireg.registry.layout import upload
from ocireg.registry.manifests import Manifest, parse_manifest
from ocireg.storage import PathNotFound
from ocireg.sync.signed import legacy_tag, present_tags
from ocireg.sync.transfers import Transfer, Transfers
from ocireg.sync.upstream import Fetched, Recorder, Upstream, UpstreamError

log = logging.getLogger("ocireg.sync")
MAX_DEPTH = 3  # an index of indexes of manifests; deeper nesting is refused
FOLLOW_POLL = 0.02  # seconds between looks for another worker process's copy of a blob
READ_AHEAD = 2  # pieces (upstream.BLOB_PIECE) read before the store takes them
PARALLEL_BLOBS = 4  # blob downloads of one image at a time
REFERRER_DEPTH = 2  # referrers of referrers (a signature on an SBOM), no further
_COSIGN_SUFFIXES = ("", ".sig", ".att", ".sbom")
KEPT_REASON = "pulled by digest through sync"  # the value of index.KEEP on such a manifest


class Copier:
    def __init__(
        self, store: ImageStore, upstream: Upstream, record: Recorder, transfers: Transfers
    ) -> None:
        self.store = store
        self.upstream = upstream
        self.record = record
        self.transfers = transfers

    async def copy(
        self,
        remote: str,
        local: str,
        reference: str,
        referrers: int = REFERRER_DEPTH,
        fetched: Fetched | None = None,
        seen: Callable[[Fetched], None] | None = None,
        keep: bool = False,
        tags: Collection[str] | None = None,
        listed: list[dict[str, Any]] | None = None,
    ) -> Digest:
        """Copy `remote:reference` to `local` under the same reference; returns its digest.
        `fetched`: its manifest, already read; `seen` is told each manifest an index lists
        as it is read (on demand answers them before they are stored). `keep`: a reference
        by digest stays after garbage collection although untagged (a client pulled it so),
        unless it is a referrer, which lives as long as its subject. `tags`: the upstream
        repository's tags, when the caller listed them (for the cosign and fallback tags);
        `listed`: the upstream's referrers of the image, when the caller asked for them."""
        if fetched is None:
            fetched = await self.upstream.manifest(remote, reference)
        await self._contents(remote, local, fetched, MAX_DEPTH, seen)
        tag = reference if names.is_tag(reference) else None
        keep = keep and check_manifest(fetched).subject is None
        await self._put(local, tag, fetched, KEPT_REASON if keep else None)
        log.info(
            "image synced",
            extra={
                "upstream": fetched.upstream,
                "repository": local,
                "reference": reference,
                "digest": str(fetched.digest),
            },
        )
        if referrers > 0:
            await self._referrers(remote, local, fetched.digest, referrers - 1, tags, listed)
        return fetched.digest

    async def blob(self, remote: str, local: str, digest: Digest) -> None:
        """Store one blob, verified against its digest by the upload's completion; fetched
        once however many copies and clients ask for it (`Transfers`, and across worker
        processes a file lock)."""
        await self.transfers.fetch(
            local, digest, functools.partial(self.blob_into, remote, local, digest)
        )

    async def blob_into(self, remote: str, local: str, digest: Digest, transfer: Transfer) -> None:
        # While another worker process copies this blob (it holds the lock), the clients
        # here follow its session's file, named in a marker it writes (filesystem only).
        watcher = asyncio.create_task(self._watch_elsewhere(local, digest, transfer))
        try:
            async with self.store.locks.hold(f"sync-blob:{local}@{digest}"):
                watcher.cancel()
                if await self.store.blobs.exists(local, digest):
                    return  # another worker process copied it meanwhile
                await self._copy_blob(remote, local, digest, transfer)
        finally:
            watcher.cancel()

    async def _copy_blob(self, remote: str, local: str, digest: Digest, transfer: Transfer) -> None:
        session = await self.store.uploads.start(local)
        marker = _marker(local, digest)
        try:
            async with self.upstream.blob(remote, digest) as (size, pieces):
                path = self.store.driver.local_path(upload(local, session))
                transfer.started(path, size)
                if path is not None and size:
                    await self.store.driver.put_content(marker, f"{session}\n{size}\n".encode())
                stored = await self.store.uploads.complete(
                    local, session, digest, self._counted(pieces, transfer.arrived)
                )
        except RegistryError as err:
            if err.code is ErrorCode.DIGEST_INVALID:  # the session is already discarded
                raise UpstreamError(self.upstream.name, f"blob {digest}: digest mismatch") from None
            await self._abandon(local, session)
            raise
        except BaseException:
            await self._abandon(local, session)
            raise
        finally:
            if transfer.path is not None:
                with contextlib.suppress(RegistryError, PathNotFound):
                    await self.store.driver.delete(marker)
        log.debug("blob synced", extra={"repository": local, "digest": str(digest), "size": stored})

    async def _watch_elsewhere(self, local: str, digest: Digest, transfer: Transfer) -> None:
        """Until the lock is ours: the session another worker process copies the blob into,
        from its marker, told to the transfer (its clients follow that file)."""
        driver = self.store.driver
        final = driver.local_path(layout.blob(local, digest))
        if final is None:
            return  # S3: a session's parts cannot be read back
        while True:
            await asyncio.sleep(FOLLOW_POLL)
            try:
                text = (await driver.get_content(_marker(local, digest))).decode()
                session, size = text.split()
                path = driver.local_path(upload(local, session))
                transfer.started_elsewhere(path, int(size), final)
                return
            except (PathNotFound, ValueError, UnicodeDecodeError):
                continue  # not written yet (or being replaced): look again

    async def _counted(
        self, pieces: AsyncIterator[bytes], arrived: Callable[[bytes], None]
    ) -> AsyncIterator[bytes]:
        """The upstream's pieces, read ahead: the store writes a batch while the next bytes
        arrive (reading only when the disk is done would leave the network idle half the
        time). At most `READ_AHEAD` pieces wait in memory. Each is told to `arrived` as it
        comes (the clients following the transfer get it from there)."""
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(READ_AHEAD)

        async def read() -> None:
            try:
                async for piece in pieces:
                    self.record("bytes", "", len(piece))
                    arrived(piece)
                    await queue.put(piece)
                await queue.put(None)
            except Exception as exc:  # handed to the consumer, which raises it
                await queue.put(exc)

        reader = asyncio.create_task(read())
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _abandon(self, local: str, session: str) -> None:
        with contextlib.suppress(RegistryError):  # gone already
            await self.store.uploads.cancel(local, session)

    async def _contents(
        self,
        remote: str,
        local: str,
        fetched: Fetched,
        depth: int,
        seen: Callable[[Fetched], None] | None = None,
    ) -> None:
        """Everything `fetched` references, stored; not `fetched` itself."""
        manifest = check_manifest(fetched)
        missing = [d for d in manifest.blobs if not await self.store.blobs.exists(local, d)]
        await self._blobs(remote, local, missing)
        if manifest.children and depth <= 1:
            raise UpstreamError(fetched.upstream, "image index nested too deep")
        nested: list[Fetched] = []
        for child in manifest.children:
            if not await self._has_manifest(local, child):
                nested.append(await self.upstream.manifest(remote, str(child)))
                if seen is not None:
                    seen(nested[-1])
        for child_manifest in nested:
            await self._contents(remote, local, child_manifest, depth - 1, seen)
            await self._put(local, None, child_manifest)

    async def _blobs(self, remote: str, local: str, digests: Iterable[Digest]) -> None:
        """Copy blobs `PARALLEL_BLOBS` at a time (layers download side by side, as clients
        pull them); the first failure cancels the others and is raised."""
        slots = asyncio.Semaphore(PARALLEL_BLOBS)

        async def bounded(digest: Digest) -> None:
            async with slots:
                await self.blob(remote, local, digest)

        tasks = [asyncio.ensure_future(bounded(d)) for d in dict.fromkeys(digests)]
        if not tasks:
            return
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # a failure, or this copy itself cancelled: the other downloads stop too
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            failure = task.exception()
            if failure is not None:
                raise failure

    async def _put(
        self, local: str, tag: str | None, fetched: Fetched, keep: str | None = None
    ) -> None:
        try:
            await self.store.put_manifest(
                local, tag or str(fetched.digest), fetched.body, fetched.media_type, keep
            )
        except RegistryError as err:
            if err.code in (ErrorCode.MANIFEST_INVALID, ErrorCode.DIGEST_INVALID):
                raise UpstreamError(fetched.upstream, f"manifest refused: {err.message}") from None
            raise

    async def _has_manifest(self, local: str, digest: Digest) -> bool:
        try:
            await self.store.resolve(local, str(digest))
        except RegistryError:
            return False
        return True

    async def _referrers(
        self,
        remote: str,
        local: str,
        subject: Digest,
        depth: int,
        tags: Collection[str] | None,
        listed: list[dict[str, Any]] | None,
    ) -> None:
        """Best effort: a referrer that cannot be copied is logged, the image stays."""
        try:
            found = listed if listed is not None else await self.upstream.referrers(remote, subject)
            for desc in found or []:
                digest = Digest.parse(desc["digest"])
                if not await self._has_manifest(local, digest):
                    await self.copy(remote, local, str(digest), depth, tags=tags)
            # The fallback tag always; cosign's own tags unless `syncLegacyCosignTags: false`.
            legacy = self.upstream.settings.legacy_cosign_tags
            wanted = [legacy_tag(subject, s) for s in (_COSIGN_SUFFIXES if legacy else ("",))]
            for tag in await present_tags(self.upstream, remote, wanted, tags):
                await self.copy(remote, local, tag, 0, tags=tags)
        except (UpstreamError, RegistryError) as exc:
            self.record("referrer_error", "", 1)
            log.warning(
                "referrers not synced",
                extra={"repository": local, "subject": str(subject), "reason": str(exc)},
            )


def _marker(local: str, digest: Digest) -> str:
    """Where the worker process copying a blob names its session and the blob's size (a dot
    name: never taken for an upload session, whose listing skips those)."""
    return layout.upload(local, f".sync-{digest.algorithm}-{digest.hex}")


def check_manifest(fetched: Fetched) -> Manifest:
    """The manifest's summary; a manifest the store would refuse is the upstream's fault."""
    try:
        return parse_manifest(fetched.body, fetched.media_type)
    except RegistryError as err:
        raise UpstreamError(fetched.upstream, f"malformed manifest: {err.message}") from None
