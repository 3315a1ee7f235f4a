"""The sync service of one worker process: on-demand pulls and periodic polls.

On demand (a manifest or blob GET/HEAD for a repository that an `onDemand` registry entry
maps):
- a manifest missing locally is fetched from the first entry and URL that has it, verified,
  answered at once, and its image copied behind the answer; blobs are streamed to the
  clients that ask while they are copied (`transfers`), and served from the store after;
- a manifest by digest that is present is served as is (a digest never changes);
- a tag that is present is revalidated with one HEAD upstream when its last check is older
  than `manifestCheckInterval` (zot's key; 0, the default, checks on every request as zot
  does); a moved tag is copied again; when no upstream answers, the cached copy is served.
- an image missing locally that no upstream could be reached for: the client gets its error
  at once, and where the entry has `maxRetries` the image is fetched in the background,
  `retryDelay` later, with up to `maxRetries` more attempts, so that a later pull finds it
  (zot's behaviour; one such task per image and worker process at a time). A blob that is
  missing locally is fetched likewise, but its request retries first while the client waits,
  for `CLIENT_RETRY_WAIT` seconds at most.
Concurrent requests for one missing image fetch it once: per process, later requests share
the first one's copy; across the instance's worker processes, a file lock per (repository,
reference) and per blob serialises them and the later one finds the content stored.

Periodic: each entry with `pollInterval` and `content` lists the upstream's catalog (or,
where the upstream has none, the literal prefixes), filters repositories and tags by the
content rules, and copies every tag whose upstream digest differs from the local one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from ocireg import names
from ocireg.digest import Digest
from ocireg.errors import ConfigError, ErrorCode, RegistryError
from ocireg.registry import ImageStore
from ocireg.sync.content import Mapping, split_pattern
from ocireg.sync.copier import Copier, check_manifest
from ocireg.sync.settings import (
    DOWNLOAD_DIR_UNUSED,
    Credentials,
    RegistrySettings,
    SyncSettings,
    load_credentials,
)
from ocireg.sync.signed import (
    UpstreamUnsigned,
    is_cosign_tag,
    is_referrers_tag,
    is_signed,
    legacy_subject,
    needs_signature,
)
from ocireg.sync.transfers import Transfers, open_follower
from ocireg.sync.upstream import (
    Fetched,
    Recorder,
    Upstream,
    UpstreamError,
    UpstreamMissing,
    no_record,
    with_retries,
)

log = logging.getLogger("ocireg.sync")
Streamed = tuple[int, AsyncGenerator[bytes, None]]  # a blob's size and its bytes as they arrive
# A background fetch with one entry: (registry, upstream name) -> done, or UpstreamError.
Fetch = Callable[["Registry", str], Awaitable[None]]
# On demand, a blob request retries (maxRetries) only while this many seconds have not passed
# since it came: clients give up on a silent server, and the background retry goes on anyway.
CLIENT_RETRY_WAIT = 10.0


@dataclass
class Registry:
    """One `registries[]` entry, ready to use."""

    settings: RegistrySettings
    upstream: Upstream
    mapping: Mapping
    copier: Copier


@dataclass
class PollReport:
    upstream: str
    repositories: int = 0
    images: int = 0
    errors: list[str] = field(default_factory=list)


class SyncService:
    def __init__(
        self, settings: SyncSettings, store: ImageStore, record: Recorder = no_record
    ) -> None:
        self.settings = settings
        self.store = store
        self.record = record
        credentials: dict[str, Credentials] = {}
        if settings.credentials_file is not None:
            try:
                credentials = load_credentials(settings.credentials_file)
            except ConfigError as err:  # as zot: said once, then sync without credentials
                log.error("sync credentials not usable", extra={"reason": str(err)})
        self.transfers = Transfers()
        self.registries = [
            _registry(entry, store, credentials, record, self.transfers)
            for entry in settings.registries
        ]
        # (local, reference) -> the copy of that image in this process, and its manifest
        # once verified (the clients waiting are answered with it before the copy ends)
        self._inflight: dict[
            tuple[str, str], tuple[asyncio.Task[None], asyncio.Future[Fetched]]
        ] = {}
        self._pending: dict[tuple[str, str], Fetched] = {}  # manifests fetched, not yet stored
        self._checked: dict[tuple[str, str], float] = {}  # (local, tag) -> last upstream check
        self._retrying: dict[tuple[str, str], asyncio.Task[None]] = {}  # background retries
        for key in settings.ignored:
            log.warning("zot sync key not implemented, ignored", extra={"key": key})
        if settings.download_dir is not None:
            log.info(DOWNLOAD_DIR_UNUSED, extra={"downloadDir": str(settings.download_dir)})

    async def close(self) -> None:
        for task, _ in list(self._inflight.values()):
            task.cancel()
        for retry in list(self._retrying.values()):
            retry.cancel()
        self.transfers.cancel_all()
        for registry in self.registries:
            await registry.upstream.close()

    def routes(self, local: str) -> list[tuple[Registry, str]]:
        """The on-demand entries that map `local`, with the upstream name, in config order."""
        out = []
        for registry in self.registries:
            if registry.settings.on_demand:
                remote = registry.mapping.remote_name(local)
                if remote is not None and _valid_name(remote):
                    out.append((registry, remote))
        return out

    # --- on demand ---------------------------------------------------------------------------

    async def on_demand_manifest(self, local: str, reference: str) -> Fetched | None:
        """Make `local:reference` present (and, for a tag, fresh enough) before it is served.
        Returns the manifest to answer with when it was just fetched and the rest of its
        image is still being copied; None when the store has the answer."""
        routes = self.routes(local)
        if not routes:
            return None
        pending = self._pending.get((local, reference))
        if pending is not None:
            return pending  # part of an image being copied: verified, not stored yet
        present = await self._local_digest(local, reference)
        if present is not None and not self._due(local, reference, routes):
            self.record("on_demand", "hit", 1)
            return None
        key = (local, reference)
        job = self._inflight.get(key)
        if job is None:
            early: asyncio.Future[Fetched] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._manifest(routes, local, reference, early))
            job = self._inflight[key] = (task, early)
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        task, early = job
        # Not cancelled with the caller: the copy goes on for the others (and the cache).
        either: set[asyncio.Future[Any]] = {task, early}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if early.done():
            return early.result()
        task.result()  # raises the copy's error, if any
        return None

    async def on_demand_blob(self, local: str, digest: Digest, follow: bool) -> Streamed | None:
        """Make `local@digest` present before it is served. With `follow`, a blob being
        copied may instead be returned as (size, bytes as they arrive). A transient failure
        is retried as the entry says (`maxRetries`...), but no attempt starts more than
        `CLIENT_RETRY_WAIT` after the request came: then the blob is fetched in the
        background, as an image is."""
        routes = self.routes(local)
        if not routes or await self.store.blobs.exists(local, digest):
            return None
        deadline = time.monotonic() + CLIENT_RETRY_WAIT
        failures: list[UpstreamError] = []
        for registry, remote in routes:
            attempt = functools.partial(self._blob_attempt, registry, remote, local, digest, follow)
            try:
                streamed = await with_retries(registry.settings, attempt, deadline)
            except UpstreamError as exc:
                failures.append(exc)
                continue
            self.record("on_demand", "miss", 1)
            return streamed
        if any(f.transient for f in failures):
            fetch = functools.partial(self._fetch_blob, local, digest)
            self._retry_later(routes, (local, f"blob {digest}"), fetch)
        self._failed(failures, local, str(digest), False, ErrorCode.BLOB_UNKNOWN)
        return None

    async def _blob_attempt(
        self, registry: Registry, remote: str, local: str, digest: Digest, follow: bool
    ) -> Streamed | None:
        """One try from one entry: with `follow`, the blob's bytes as they arrive if its copy
        can be followed; else None once it is stored. Raises the copy's error."""
        copy = functools.partial(registry.copier.blob_into, remote, local, digest)
        transfer = self.transfers.start(local, digest, copy)
        assert transfer.task is not None
        if follow:
            started = asyncio.ensure_future(transfer.ready.wait())
            await asyncio.wait({transfer.task, started}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if transfer.followable and not transfer.task.done():
                follower = await open_follower(transfer)
                if follower is not None:
                    return transfer.size or 0, follower
        await asyncio.shield(transfer.task)
        return None

    async def _manifest(
        self,
        routes: list[tuple[Registry, str]],
        local: str,
        ref: str,
        early: asyncio.Future[Fetched],
    ) -> None:
        async with self.store.locks.hold(f"sync-manifest:{local}@{ref}"):
            present = await self._local_digest(local, ref)
            if present is not None and not self._due(local, ref, routes):
                self.record("on_demand", "hit", 1)  # another worker fetched it meanwhile
                return
            failures: list[UpstreamError] = []
            for registry, remote in routes:
                try:
                    if present is not None:
                        now = await registry.upstream.manifest_digest(remote, ref)
                        self._checked[(local, ref)] = time.monotonic()
                        if now == present:
                            self.record("on_demand", "hit", 1)
                            return
                    fetched = await registry.upstream.manifest(remote, ref)
                    check_manifest(fetched)
                    listed = await self._require_signature(registry, remote, ref, fetched.digest)
                except UpstreamError as exc:
                    failures.append(exc)
                    continue
                await self._copy_behind(registry, remote, local, ref, fetched, early, listed)
                return
        if present is None and any(f.transient for f in failures):
            self._retry_later(
                routes, (local, ref), functools.partial(self._fetch_image, local, ref)
            )
        self._failed(failures, local, ref, present is not None, ErrorCode.MANIFEST_UNKNOWN)

    def _retry_later(
        self, routes: list[tuple[Registry, str]], key: tuple[str, str], fetch: Fetch
    ) -> None:
        """`fetch` in the background with the entries that have `maxRetries`; `key`
        (repository, what) names it, one task per key."""
        retrying = [(r, remote) for r, remote in routes if r.settings.max_retries > 0]
        if not retrying or key in self._retrying:
            return
        task = asyncio.create_task(self._retry(retrying, key, fetch))
        self._retrying[key] = task
        task.add_done_callback(lambda _: self._retrying.pop(key, None))

    async def _retry(
        self, routes: list[tuple[Registry, str]], key: tuple[str, str], fetch: Fetch
    ) -> None:
        local, what = key
        for registry, remote in routes:
            await asyncio.sleep(registry.settings.retry_delay)
            try:
                await with_retries(registry.settings, functools.partial(fetch, registry, remote))
            except UpstreamUnsigned:
                return  # reached at last, and skipped (onlySigned): logged as such, no error
            except (UpstreamError, RegistryError) as exc:
                log.error(
                    "on-demand retries failed",
                    extra={
                        "upstream": registry.upstream.name,
                        "repository": local,
                        "reference": what,
                        "reason": str(exc),
                    },
                )
                continue
            log.info(
                "on-demand retry synced",
                extra={"upstream": registry.upstream.name, "repository": local, "reference": what},
            )
            return

    async def _fetch_image(self, local: str, ref: str, registry: Registry, remote: str) -> None:
        # The lock per attempt, not across the waits: pulls in between go on.
        async with self.store.locks.hold(f"sync-manifest:{local}@{ref}"):
            if await self._local_digest(local, ref) is not None:
                return  # a pull stored it meanwhile
            fetched = await registry.upstream.manifest(remote, ref)
            listed = await self._require_signature(registry, remote, ref, fetched.digest)
            await registry.copier.copy(
                remote, local, ref, fetched=fetched, keep=True, listed=listed
            )
        self._checked[(local, ref)] = time.monotonic()
        self.record("image", "on_demand", 1)

    async def _fetch_blob(
        self, local: str, digest: Digest, registry: Registry, remote: str
    ) -> None:
        await registry.copier.blob(remote, local, digest)  # a no-op if it is stored meanwhile

    async def _copy_behind(
        self,
        registry: Registry,
        remote: str,
        local: str,
        ref: str,
        fetched: Fetched,
        early: asyncio.Future[Fetched],
        listed: list[dict[str, Any]] | None,
    ) -> None:
        """Answer the waiting clients with the verified manifest now and copy the image
        behind them: its blobs are streamed to clients that ask while they are copied, the
        manifests it lists are answered from memory until they are stored. `listed`: its
        upstream referrers, if the signature check asked for them."""
        keys = [(local, ref), (local, str(fetched.digest))]

        def seen(child: Fetched) -> None:
            keys.append((local, str(child.digest)))
            self._pending[keys[-1]] = child

        for key in keys:
            self._pending[key] = fetched
        early.set_result(fetched)
        try:
            await registry.copier.copy(
                remote, local, ref, fetched=fetched, seen=seen, keep=True, listed=listed
            )
        except (UpstreamError, RegistryError) as exc:
            self.record("image_error", "on_demand", 1)
            log.error(
                "on-demand sync failed after the manifest was served",
                extra={"repository": local, "reference": ref, "reason": str(exc)},
            )
            return
        finally:
            for key in keys:
                self._pending.pop(key, None)
        self._checked[(local, ref)] = time.monotonic()
        self.record("on_demand", "miss", 1)
        self.record("image", "on_demand", 1)

    def _failed(
        self,
        failures: Sequence[UpstreamError],
        local: str,
        reference: str,
        cached: bool,
        code: ErrorCode,
    ) -> None:
        """Every upstream failed: serve the cached copy if there is one, else say why."""
        reasons = [str(f) for f in failures]
        if cached and failures and all(isinstance(f, UpstreamUnsigned) for f in failures):
            # onlySigned, and the tag moved upstream to an unsigned image: the stored one is
            # the answer, as for a tag that did not move (`_require_signature` logged why)
            self.record("on_demand", "hit", 1)
            return
        if cached:
            self.record("on_demand", "stale", 1)
            log.warning(
                "upstream check failed, serving the cached copy",
                extra={"repository": local, "reference": reference, "reasons": reasons},
            )
            return
        if all(isinstance(f, UpstreamMissing) for f in failures):
            return  # not upstream either: the handler answers the usual 404
        self.record("image_error", "on_demand", 1)
        log.error(
            "on-demand sync failed",
            extra={"repository": local, "reference": reference, "reasons": reasons},
        )
        if all(f.transient for f in failures):
            raise RegistryError(
                ErrorCode.UNAVAILABLE,
                "the upstream registry could not be reached",
                {"reference": reference, "upstreams": reasons},
            )
        raise RegistryError(
            code,
            "could not be synced from the upstream registry",
            {"reference": reference, "upstreams": reasons},
        )

    async def _require_signature(
        self,
        registry: Registry,
        remote: str,
        reference: str,
        digest: Digest,
        tags: Collection[str] | None = None,
    ) -> list[dict[str, Any]] | None:
        """With `onlySigned`, raise `UpstreamUnsigned` unless the upstream holds a signature
        of `remote@digest` (zot skips such an image and logs it, on demand as periodically;
        on demand the client then gets what is stored: a 404, or the copy stored before).
        The upstream's referrers of the image, when it was asked for them (for the copy)."""
        if not needs_signature(registry.settings, reference):
            return None
        signed, listed = await is_signed(registry.upstream, remote, digest, tags)
        if signed:
            return listed
        log.info(
            "image skipped: onlySigned and the upstream has no signature of it",
            extra={
                "upstream": registry.upstream.name,
                "repository": remote,
                "reference": reference,
                "digest": str(digest),
            },
        )
        raise UpstreamUnsigned(registry.upstream.name, f"{remote}@{digest}: not signed")

    def _due(self, local: str, reference: str, routes: list[tuple[Registry, str]]) -> bool:
        """Whether a present reference must be checked upstream before it is served."""
        if not names.is_tag(reference):
            return False
        last = self._checked.get((local, reference))
        interval = min(r.settings.manifest_check_interval for r, _ in routes)
        return last is None or time.monotonic() - last >= interval

    async def _local_digest(self, local: str, reference: str) -> Digest | None:
        try:
            desc = await self.store.resolve(local, reference)
            return Digest.parse(desc["digest"])
        except (RegistryError, KeyError, TypeError):
            return None

    # --- periodic ----------------------------------------------------------------------------

    async def poll(self, registry: Registry, owns: Callable[[str], bool]) -> PollReport:
        """One periodic pass over `registry`: copy new and moved tags that pass the filters."""
        upstream = registry.upstream
        report = PollReport(upstream.name)
        for remote in await self._repositories(registry):
            local = registry.mapping.local_name(remote)
            if local is None or not _valid_name(local) or not owns(local):
                continue
            report.repositories += 1
            try:
                tags = await with_retries(
                    registry.settings, functools.partial(upstream.tags, remote)
                )
            except UpstreamError as exc:
                report.errors.append(str(exc))
                continue
            listed = frozenset(tags)  # looked up for each image's cosign and fallback tags
            for tag in registry.mapping.tags(remote, tags):
                if not names.is_tag(tag) or not await self._poll_wants(registry, local, tag):
                    continue
                try:
                    if await self._poll_tag(registry, remote, local, tag, listed):
                        report.images += 1
                        self.record("image", "periodic", 1)
                except (UpstreamError, RegistryError) as exc:
                    report.errors.append(f"{remote}:{tag}: {exc}")
                    self.record("image_error", "periodic", 1)
        log.info(
            "periodic sync done",
            extra={
                "upstream": report.upstream,
                "repositories": report.repositories,
                "images": report.images,
                "errors": len(report.errors),
            },
        )
        for error in report.errors[:20]:
            log.warning("periodic sync error", extra={"upstream": report.upstream, "reason": error})
        return report

    async def _poll_wants(self, registry: Registry, local: str, tag: str) -> bool:
        """Whether the pass looks at `tag` itself. cosign's signature and SBOM tags and the
        referrers fallback tag come with their subject (`Copier._referrers`); zot never
        copies them on their own, so neither does the pass with `syncLegacyCosignTags:
        false`, nor, with `onlySigned`, for a subject that is not stored here (it was not
        signed). Otherwise they are copied as tags too: a signature added upstream to an
        image already stored is found by the next pass."""
        settings = registry.settings
        if not (is_cosign_tag(tag) or is_referrers_tag(tag)):
            return True
        if not settings.legacy_cosign_tags and is_cosign_tag(tag):
            return False
        if not settings.only_signed:
            return True
        subject = legacy_subject(tag)
        return subject is not None and await self._local_digest(local, str(subject)) is not None

    async def _poll_tag(
        self, registry: Registry, remote: str, local: str, tag: str, tags: Collection[str]
    ) -> bool:
        settings = registry.settings
        digest = await with_retries(
            settings, lambda: registry.upstream.manifest_digest(remote, tag)
        )
        if await self._local_digest(local, tag) == digest:
            return False
        try:
            listed = await with_retries(
                settings,
                lambda: self._require_signature(registry, remote, tag, digest, tags),
            )
        except UpstreamUnsigned:
            return False  # as zot: skipped, not an error

        async def copy() -> None:
            # The image checked above, by its digest (the tag may have moved since: the next
            # pass follows it), from here if this repository stores it under another tag.
            fetched = await self._stored(local, digest, registry.upstream.name)
            if fetched is None:
                fetched = await registry.upstream.manifest(remote, str(digest))
            await registry.copier.copy(
                remote, local, tag, fetched=fetched, tags=tags, listed=listed
            )

        async with self.store.locks.hold(f"sync-manifest:{local}@{tag}"):
            if await self._local_digest(local, tag) == digest:
                return False
            await with_retries(settings, copy)
        return True

    async def _stored(self, local: str, digest: Digest, upstream: str) -> Fetched | None:
        """The manifest `digest` as stored in `local` (its index lists it), as if fetched."""
        try:
            stored = await self.store.get_manifest(local, str(digest))
        except RegistryError:
            return None
        return Fetched(stored.body, stored.media_type, stored.digest, upstream)

    async def _repositories(self, registry: Registry) -> list[str]:
        """The upstream repositories the content rules cover: from the catalog, or where
        there is none, the prefixes that name one repository exactly."""
        try:
            catalog = await with_retries(registry.settings, registry.upstream.catalog)
        except UpstreamError as exc:
            log.warning(
                "upstream catalog unavailable, using literal prefixes",
                extra={"upstream": registry.upstream.name, "reason": str(exc)},
            )
            catalog = [
                rule.prefix.strip("/")
                for rule in registry.mapping.rules
                if split_pattern(rule.prefix.strip("/") + "/")[1] == ""
            ]
        return [r for r in catalog if registry.mapping.rule_for_upstream(r) is not None]


def _valid_name(name: str) -> bool:
    try:
        names.validate_name(name)
    except RegistryError:
        return False
    return True


def _registry(
    settings: RegistrySettings,
    store: ImageStore,
    credentials: dict[str, Credentials],
    record: Recorder,
    transfers: Transfers,
) -> Registry:
    upstream = Upstream(settings, credentials, record)
    copier = Copier(store, upstream, record, transfers)
    return Registry(settings, upstream, Mapping(settings.content), copier)
