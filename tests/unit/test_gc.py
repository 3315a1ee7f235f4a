"""Garbage collection in process, over a real filesystem driver and sqlite store, with the
collector's clock moved instead of waiting out gcDelay (tests/ops/test_gc.py runs the real
`ocireg gc` command against a serving registry)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ocireg.digest import Digest
from ocireg.meta.sqlite import SqliteMeta
from ocireg.ops.gc import GarbageCollector, GCReport
from ocireg.registry import ImageStore, layout
from ocireg.storage.filesystem import FilesystemDriver
from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    encode_json,
    image_index,
    image_manifest,
    random_bytes,
    sha256_digest,
)

T = TypeVar("T")
HOUR = 3600.0
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Registry:
    """An ImageStore on `root`, driven from synchronous test code through one event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.store = ImageStore(FilesystemDriver(root), root / "locks", SqliteMeta(root / "m.db"))

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def blob(self, repo: str, data: bytes) -> str:
        digest = Digest.parse(sha256_digest(data))
        self.run(self.store.blobs.put_small(repo, digest, data))
        return str(digest)

    def image(self, repo: str, tag: str | None = None, **extra: Any) -> tuple[str, set[str]]:
        """Push a config, a layer and a manifest; (manifest digest, every digest pushed)."""
        config, layer = encode_json({"n": random_bytes(8).hex()}), random_bytes(64)
        self.blob(repo, config)
        self.blob(repo, layer)
        body, digest = image_manifest(
            descriptor(CONFIG, config), [descriptor(LAYER, layer)], **extra
        )
        self.manifest(repo, tag or digest, body, OCI_MANIFEST)
        return digest, {digest, sha256_digest(config), sha256_digest(layer)}

    def manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> None:
        self.run(self.store.put_manifest(repo, reference, body, media_type))

    def upload(self, repo: str, data: bytes) -> str:
        """An upload session that received `data` and was never completed."""

        async def body() -> AsyncIterator[bytes]:
            yield data

        session = self.run(self.store.uploads.start(repo))
        self.run(self.store.uploads.append(repo, session, body()))
        return session

    def collect(self, repo: str, now: float, dry_run: bool = False) -> GCReport:
        collector = GarbageCollector(self.store, HOUR, dry_run=dry_run, clock=lambda: now)
        return self.run(collector.collect(repo))

    def blob_files(self, repo: str) -> set[str]:
        root = self.root / repo / "blobs" / "sha256"
        return {f"sha256:{p.name}" for p in root.iterdir()} if root.exists() else set()

    def index_digests(self, repo: str) -> set[str]:
        index = self.run(self.store.indexes.load(repo))
        return set() if index is None else set(index.digests())

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path)
    try:
        yield reg
    finally:
        reg.close()


def later(hours: float) -> float:
    return time.time() + hours * HOUR


def test_nothing_younger_than_the_delay_is_touched(registry: Registry) -> None:
    untagged, pushed = registry.image("r")
    orphan = registry.blob("r", random_bytes(10))
    report = registry.collect("r", now=time.time())
    assert (report.manifests, report.blobs, report.uploads) == ([], [], [])
    assert registry.blob_files("r") == pushed | {orphan}
    assert registry.index_digests("r") == {untagged}


def test_past_the_delay_exactly_the_unreachable_goes(registry: Registry) -> None:
    tagged, kept = registry.image("r", "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": tagged, "size": 1}
    referrer, referrer_blobs = registry.image("r", subject=subject)
    child, child_blobs = registry.image("r")
    index_body, index = image_index([{"mediaType": OCI_MANIFEST, "digest": child, "size": 1}])
    registry.manifest("r", "multi", index_body, OCI_INDEX)
    old, old_blobs = registry.image("r", "latest")
    new, new_blobs = registry.image("r", "latest")
    garbage, garbage_blobs = registry.image("r")
    orphan = registry.blob("r", random_bytes(10))
    kept |= referrer_blobs | child_blobs | new_blobs | {index}

    planned = registry.collect("r", now=later(2), dry_run=True)
    assert set(planned.manifests) == {old, garbage}
    assert set(planned.blobs) == (old_blobs | garbage_blobs | {orphan}) - kept
    assert registry.blob_files("r") == kept | old_blobs | garbage_blobs | {orphan}

    report = registry.collect("r", now=later(2))
    assert set(report.manifests) == {old, garbage}
    assert registry.blob_files("r") == kept
    assert registry.index_digests("r") == {tagged, referrer, child, index, new}
    assert report.bytes_freed > 0 and report.bytes_kept > 0
    again = registry.collect("r", now=later(2))
    assert (again.manifests, again.blobs) == ([], [])


def test_the_cutoff_is_the_clock_minus_the_delay(registry: Registry) -> None:
    _, pushed = registry.image("r", "v1")
    orphan = registry.blob("r", random_bytes(10))
    assert registry.collect("r", now=later(0.9)).blobs == []
    assert registry.collect("r", now=later(1.1)).blobs == [orphan]
    assert registry.blob_files("r") == pushed


def test_a_repository_without_index_json_is_left_alone(registry: Registry) -> None:
    """Blobs and no index.json, as a first push stopped before its manifest leaves them: the
    collector reads index.json to know what is referenced, and without one it removes
    nothing."""
    orphan = registry.blob("r", random_bytes(10))
    assert registry.collect("r", now=later(2)).blobs == []
    assert registry.blob_files("r") == {orphan}


def test_idle_upload_sessions_go_and_fresh_ones_stay(registry: Registry) -> None:
    idle = registry.upload("r", b"partial")
    report = registry.collect("r", now=time.time())
    assert report.uploads == []
    report = registry.collect("r", now=later(2))
    assert report.uploads == [idle]
    assert registry.run(registry.store.driver.upload_list(layout.uploads_dir("r"))) == []


def test_an_unreadable_kept_manifest_stops_the_sweep(registry: Registry) -> None:
    tagged, pushed = registry.image("r", "v1")
    orphan = registry.blob("r", random_bytes(10))
    (registry.root / "r" / "blobs" / "sha256" / tagged.split(":")[1]).write_bytes(b"not json")
    report = registry.collect("r", now=later(2))
    assert report.skipped is not None and tagged in report.skipped
    assert registry.blob_files("r") == pushed | {orphan}
