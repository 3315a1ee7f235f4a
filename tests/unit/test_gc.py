"""Garbage collection in process, over a real filesystem driver and sqlite store, with the
collector's clock moved instead of waiting out gcDelay, and with `storage.retention` (zot's
policies; their rules alone: tests/unit/test_retention.py). tests/ops/test_gc.py and
tests/ops/test_retention.py run the real `ocireg gc` command against a serving registry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ocireg.config import build_config
from ocireg.digest import Digest
from ocireg.meta.sqlite import SqliteMeta
from ocireg.ops.gc import GarbageCollector, GCReport
from ocireg.ops.runs import Checkpoint, each_repository
from ocireg.registry import ImageStore, layout
from ocireg.storage import FileSessions
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
        driver = FilesystemDriver(root)
        self.store = ImageStore(
            driver, FileSessions(driver), root / "locks", SqliteMeta(root / "m.db")
        )

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
    assert registry.run(registry.store.sessions.list(layout.uploads_dir("r"))) == []


def test_an_unreadable_kept_manifest_stops_the_sweep(registry: Registry) -> None:
    tagged, pushed = registry.image("r", "v1")
    orphan = registry.blob("r", random_bytes(10))
    (registry.root / "r" / "blobs" / "sha256" / tagged.split(":")[1]).write_bytes(b"not json")
    report = registry.collect("r", now=later(2))
    assert report.skipped is not None and tagged in report.skipped
    assert registry.blob_files("r") == pushed | {orphan}


NAMES = ["a", "a/b", "a/b/c", "a-c", "b", "b.x/y", "z"]


def test_the_walk_visits_every_repository_and_resumes_after_any_of_them(
    registry: Registry,
) -> None:
    for name in NAMES:
        registry.image(name, "v1")

    async def walk(after: str = "") -> list[str]:
        return [repo async for repo in registry.store.repositories(after)]

    # Component by component: a directory's repositories come right after it.
    order = ["a", "a/b", "a/b/c", "a-c", "b", "b.x/y", "z"]
    assert registry.run(walk()) == order
    for i, name in enumerate(order):
        assert registry.run(walk(name)) == order[i + 1 :]
    assert registry.run(walk("a/b/zzz")) == ["a-c", "b", "b.x/y", "z"]  # since deleted
    assert registry.run(registry.store.catalog()) == sorted(NAMES)


def test_an_interrupted_run_resumes_after_the_last_repository_it_finished(
    registry: Registry, tmp_path: Path
) -> None:
    for name in NAMES:
        registry.image(name, "v1")
    checkpoint = Checkpoint(tmp_path / "gc-progress")

    async def visit(repo: str) -> str:
        return repo

    async def run(stop_after: int | None) -> list[str]:
        seen: list[str] = []
        runs = each_repository(registry.store, "gc", visit, checkpoint=checkpoint, save_every=0)
        async for repo in runs:
            seen.append(repo)
            if len(seen) == stop_after:
                break  # as a SIGKILL would, between two repositories
        return seen

    first = registry.run(run(stop_after=3))
    # The third was yielded, not finished: the checkpoint names the second.
    assert checkpoint.load() == first[1]
    assert registry.run(run(stop_after=None)) == NAMES[2:]
    assert checkpoint.load() == ""  # a run that reached the end starts over next time
    assert registry.run(run(stop_after=None)) == NAMES


# --- storage.retention (zot's policies) -------------------------------------------------------
# Push times are set as storage keeps them, on the manifest blob's mtime; pull times through
# the metadata store, as the server's pull log writes them.

DAY = 24 * HOUR


def collect_retained(
    registry: Registry, repo: str, retention: dict[str, Any], now: float | None = None
) -> GCReport:
    config = build_config(
        {"storage": {"rootDirectory": str(registry.root), "gcDelay": "1h", "retention": retention}}
    )
    collector = GarbageCollector.of(registry.store, config)
    at = time.time() if now is None else now
    collector.clock = lambda: at
    return registry.run(collector.collect(repo))


def pushed_ago(registry: Registry, repo: str, digest: str, days: float) -> None:
    """As if the manifest had been pushed `days` ago: its blob's mtime, and the push the
    metadata store noted (which only ever moves forward: its row is replaced here)."""
    path = registry.root / repo / "blobs" / "sha256" / digest.split(":")[1]
    at = time.time() - days * DAY
    os.utime(path, (at, at))
    db = registry.store.meta._conn()  # type: ignore[attr-defined]
    db.execute("UPDATE pushes SET at = ? WHERE repo = ? AND digest = ?", (at, repo, digest))


def tags(registry: Registry, repo: str) -> set[str]:
    return set(registry.run(registry.store.tags(repo)))


def test_tags_the_policy_does_not_keep_go_with_what_only_they_named(registry: Registry) -> None:
    kept, kept_blobs = registry.image("r", "v1.0")
    old, old_blobs = registry.image("r", "nightly-1")
    new, _ = registry.image("r", "nightly-2")
    for digest, days in ((kept, 30), (old, 10), (new, 1)):
        pushed_ago(registry, "r", digest, days)
    retention = {
        "policies": [
            {
                "repositories": ["r"],
                "keepTags": [
                    {"patterns": ["^v"]},
                    {"patterns": ["^nightly"], "pushedWithin": "72h"},
                ],
            }
        ]
    }
    report = collect_retained(registry, "r", retention, now=later(2))
    assert report.tags == ["nightly-1"]
    assert report.manifests == [old]
    assert tags(registry, "r") == {"v1.0", "nightly-2"}
    assert registry.index_digests("r") == {kept, new}
    assert not old_blobs & registry.blob_files("r")
    assert kept_blobs <= registry.blob_files("r")
    assert collect_retained(registry, "r", retention, now=later(2)).tags == []


def test_a_repository_no_policy_covers_keeps_its_tags(registry: Registry) -> None:
    digest, _ = registry.image("other", "anything")
    pushed_ago(registry, "other", digest, 100)
    retention = {"policies": [{"repositories": ["r/**"], "keepTags": [{"patterns": ["^v"]}]}]}
    assert collect_retained(registry, "other", retention, now=later(2)).tags == []
    assert tags(registry, "other") == {"anything"}


def test_a_dropped_tag_on_a_digest_another_tag_keeps_leaves_the_manifest(
    registry: Registry,
) -> None:
    _, pushed = registry.image("r", "v1")
    registry.manifest(
        "r", "scratch", registry.run(registry.store.get_manifest("r", "v1")).body, OCI_MANIFEST
    )
    retention = {"policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["^v"]}]}]}
    report = collect_retained(registry, "r", retention, now=later(2))
    assert (report.tags, report.manifests) == (["scratch"], [])
    assert tags(registry, "r") == {"v1"}
    assert pushed <= registry.blob_files("r")


def test_dry_run_changes_no_entry_and_collects_only_what_no_entry_names(
    registry: Registry,
) -> None:
    digest, pushed = registry.image("r", "dev")
    untagged, untagged_blobs = registry.image("r")
    orphan = registry.blob("r", b"nobody names this")
    retention = {
        "dryRun": True,
        "policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["^v"]}]}],
    }
    report = collect_retained(registry, "r", retention, now=later(2))
    assert report.decided_only and not report.dry_run and report.tags == ["dev"]
    assert set(report.manifests) == {digest, untagged}
    assert report.blobs == [orphan]
    assert tags(registry, "r") == {"dev"}
    assert registry.blob_files("r") == pushed | untagged_blobs


def test_delete_untagged_false_keeps_untagged_manifests_of_any_age(registry: Registry) -> None:
    untagged, blobs = registry.image("r")
    keep_all = {"policies": [{"repositories": ["**"], "deleteUntagged": False}]}
    assert collect_retained(registry, "r", keep_all, now=later(48)).manifests == []
    assert blobs <= registry.blob_files("r")
    assert collect_retained(
        registry, "r", {"policies": [{"repositories": ["**"]}]}, now=later(48)
    ).manifests == [untagged]


def test_keep_untagged_keeps_the_newest_untagged_manifests(registry: Registry) -> None:
    older, _ = registry.image("r")
    newer, _ = registry.image("r")
    pushed_ago(registry, "r", older, 5)
    pushed_ago(registry, "r", newer, 4)
    retention = {
        "policies": [{"repositories": ["**"], "keepUntagged": {"mostRecentlyPushedCount": 1}}]
    }
    assert collect_retained(registry, "r", retention, now=later(2)).manifests == [older]
    assert registry.index_digests("r") == {newer}


def test_the_retention_delay_replaces_gc_delay_for_untagged_manifests(
    registry: Registry,
) -> None:
    untagged, _ = registry.image("r")
    slow = {"delay": "24h", "policies": []}
    assert collect_retained(registry, "r", slow, now=later(2)).manifests == []
    assert collect_retained(registry, "r", slow, now=later(25)).manifests == [untagged]


def test_delete_referrers_false_keeps_a_referrer_whose_subject_went(registry: Registry) -> None:
    subject, _ = registry.image("r", "v1")
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    referrer, _ = registry.image("r", subject=descriptor)
    registry.run(registry.store.delete_manifest("r", subject))
    keep = {"policies": [{"repositories": ["**"]}]}
    assert collect_retained(registry, "r", keep, now=later(2)).manifests == []
    assert registry.index_digests("r") == {referrer}
    drop = {"policies": [{"repositories": ["**"], "deleteReferrers": True}]}
    assert collect_retained(registry, "r", drop, now=later(2)).manifests == [referrer]


def test_pulled_within_decides_by_the_pulls_the_store_noted(registry: Registry) -> None:
    pulled, _ = registry.image("r", "pulled")
    cold, _ = registry.image("r", "cold")
    for digest in (pulled, cold):
        pushed_ago(registry, "r", digest, 60)
    meta = registry.store.meta
    retention = {"policies": [{"repositories": ["**"], "keepTags": [{"pulledWithin": "168h"}]}]}
    # Pulls watched for two days only: nothing proves "cold" was not pulled last week.
    registry.run(meta.pulls_since(time.time() - 2 * DAY))
    assert collect_retained(registry, "r", retention).tags == []
    # Watched for a month (a fresh store row), and "pulled" was pulled yesterday.
    registry.run(meta.record_pulls("r", {pulled: time.time() - DAY}))
    meta._conn().execute("DELETE FROM state WHERE key = 'pulls-since'")  # type: ignore[attr-defined]
    registry.run(meta.pulls_since(time.time() - 30 * DAY))
    assert collect_retained(registry, "r", retention).tags == ["cold"]
    assert tags(registry, "r") == {"pulled"}


def test_a_dry_run_with_an_unreadable_listed_manifest_deletes_nothing(
    registry: Registry,
) -> None:
    _, kept_blobs = registry.image("r", "v1")
    junk, _ = registry.image("r", "junk")
    (registry.root / "r" / "blobs" / "sha256" / junk.split(":")[1]).write_bytes(b"not json")
    dry = {
        "dryRun": True,
        "policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["^v"]}]}],
    }
    report = collect_retained(registry, "r", dry, now=later(2))
    assert report.skipped is not None and report.blobs == []
    assert kept_blobs <= registry.blob_files("r")
    assert tags(registry, "r") == {"v1", "junk"}


def test_delete_untagged_false_keeps_the_children_of_an_index_whose_tag_went(
    registry: Registry,
) -> None:
    child, child_blobs = registry.image("r")
    body, index = image_index([{"mediaType": OCI_MANIFEST, "digest": child, "size": 1}])
    registry.manifest("r", "multi", body, OCI_INDEX)
    keep = {
        "policies": [
            {"repositories": ["**"], "deleteUntagged": False, "keepTags": [{"patterns": ["^v"]}]}
        ]
    }
    report = collect_retained(registry, "r", keep, now=later(2))
    assert (report.tags, report.manifests) == (["multi"], [index])
    assert registry.index_digests("r") == {child}
    assert child_blobs <= registry.blob_files("r")


def test_a_referrer_that_stays_keeps_its_subjects_manifest_not_its_layers(
    registry: Registry,
) -> None:
    subject, subject_blobs = registry.image("r", "old")
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    referrer, _ = registry.image("r", subject=descriptor)
    retention = {"policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["^v"]}]}]}
    report = collect_retained(registry, "r", retention, now=later(2))
    assert (report.tags, report.manifests) == (["old"], [subject])
    assert registry.index_digests("r") == {referrer}
    # as zot: the subject's manifest blob stays (the referrer names it), its config and layer go
    assert registry.blob_files("r") & subject_blobs == {subject}


def test_keep_untagged_ranks_referrers_and_index_children_too(registry: Registry) -> None:
    """As zot: `keepUntagged` ranks every untagged entry. The two newest here are a referrer
    and an index's child, so with a count of 2 the older plain manifest goes (were they left
    out of the ranking, it would be among the 2 newest and stay)."""
    subject, _ = registry.image("r", "v1")
    plain, _ = registry.image("r")
    referrer, _ = registry.image(
        "r", subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    )
    child, _ = registry.image("r")
    body, index = image_index([{"mediaType": OCI_MANIFEST, "digest": child, "size": 1}])
    registry.manifest("r", "multi", body, OCI_INDEX)
    for digest, days in ((subject, 9), (index, 9), (plain, 5), (referrer, 2), (child, 1)):
        pushed_ago(registry, "r", digest, days)
    retention = {
        "policies": [{"repositories": ["**"], "keepUntagged": {"mostRecentlyPushedCount": 2}}]
    }
    report = collect_retained(registry, "r", retention, now=later(2))
    assert (report.tags, report.manifests) == ([], [plain])
    assert registry.index_digests("r") == {subject, referrer, child, index}


def test_a_temporary_index_file_is_left_while_the_repository_is_being_written(
    registry: Registry,
) -> None:
    """The temporary file of an index.json write is removed only under the repository's
    lock, never waited for: while a write holds the lock, the file is left for the next run
    however old it looks (a slow write under a small gcDelay)."""
    registry.image("r", "v1")
    temporary = registry.root / "r" / f".index.json.{'e' * 32}.tmp"
    temporary.write_bytes(b'{"schemaVersion":2,')
    os.utime(temporary, (1.0, 1.0))
    collector = GarbageCollector(registry.store, HOUR, clock=lambda: 10 * HOUR)

    async def leftovers(while_written: bool) -> list[str]:
        report = GCReport("r", False)
        async with contextlib.AsyncExitStack() as stack:
            if while_written:
                await stack.enter_async_context(registry.store.locks.repo("r"))
            await collector._collect_leftovers("r", 9 * HOUR, report)
        return report.uploads

    assert registry.run(leftovers(while_written=True)) == [] and temporary.exists()
    assert registry.run(leftovers(while_written=False)) == [temporary.name]
    assert not temporary.exists()
