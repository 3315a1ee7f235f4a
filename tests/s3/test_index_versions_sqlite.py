"""Tag and manifest reads without a storage round trip on S3 with the embedded sqlite store
(`storage.storageDriver.solewriter`, registry/versions.py): one instance, two workers
sharing one sqlite file, on SeaweedFS. Reads send nothing to S3; a tag moved through either
worker is read at once through either; `rebuild-meta` and a lost sqlite file change
nothing a client sees; an outside writer is seen once its key expires."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocireg.meta.factory import META_FILE
from ocireg.registry.versions import VERSION, VERSION_TTL
from tests.support.backends import SeaweedFS
from tests.support.oci import (
    Image,
    assert_error,
    assert_image_pulls,
    manifest_path,
    push_artifact,
    push_image,
    unique_repo,
)
from tests.support.reads import (
    METRICS,
    digest_through,
    fast_paths,
    move_tag_outside,
    retag,
    sent_during,
    storage_requests,
    wait_fast,
)
from tests.support.server import RegistryProcess, base_config, run_cli

MOVES = 30
MOVES_MAX = 300  # a bound, should the kernel hand nearly every connection to one worker


def sole_writer_config(workdir: Path, seaweedfs: SeaweedFS) -> dict[str, Any]:
    """One instance (two workers) on a fresh SeaweedFS root with the embedded sqlite
    store, which it says it is the only writer of."""
    cfg = base_config(workdir / "local", extensions=METRICS)
    root = f"/sq{uuid.uuid4().hex[:8]}"
    cfg["storage"]["storageDriver"] = seaweedfs.storage_driver(root, solewriter=True)
    return cfg


@pytest.fixture(scope="module")
def instance(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS
) -> Iterator[RegistryProcess]:
    tmp = tmp_path_factory.mktemp("versions-sqlite")
    proc = RegistryProcess(tmp, sole_writer_config(tmp, seaweedfs)).start()
    try:
        yield proc
    finally:
        proc.stop()


def meta_db(proc: RegistryProcess) -> Path:
    return proc.root / META_FILE


def answering_pids(proc: RegistryProcess, method: str, path: str) -> set[int]:
    """The worker processes whose access log shows `method path`."""
    pids = set()
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("method") == method and entry.get("path") == path:
                pids.add(entry["pid"])
    return pids


def test_fast_reads_send_nothing_to_storage(instance: RegistryProcess) -> None:
    """Manifest GET/HEAD by tag and by digest, tags list and referrers: 0 S3 requests."""
    repo = unique_repo("sqfast")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        image = push_image(client, repo, "v1")
        sig = push_artifact(client, repo, image, "application/vnd.example.sig")
    reads = fast_paths(repo, image, "v1")
    wait_fast([instance], reads)
    assert sent_during(instance, reads * 25) == {}
    r = httpx.get(f"{instance.url}/v2/{repo}/referrers/{image.digest}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sig.digest]
    # The counter does count: a repository nobody wrote is asked of S3.
    before = storage_requests(instance)
    assert_error(
        httpx.get(f"{instance.url}{manifest_path(unique_repo('sqnone'), 'v1')}"),
        404,
        "MANIFEST_UNKNOWN",
    )
    assert sum(storage_requests(instance).values()) > sum(before.values())


def test_tag_moves_are_read_at_once_through_both_workers(instance: RegistryProcess) -> None:
    repo = unique_repo("sqmove")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        images = [push_image(client, repo, f"i{n}") for n in range(3)]
    retag(instance, images[0], "latest")
    path = manifest_path(repo, "latest")
    wait_fast([instance], [path])
    workers = set(instance.worker_pids())
    assert len(workers) == 2

    def both_workers_moved_and_read() -> bool:
        return (
            answering_pids(instance, "PUT", path) == workers  # each worker moved the tag
            and answering_pids(instance, "GET", path) == workers  # and read the other's moves
        )

    # The workers share one listening socket and the kernel picks which one accepts, so the
    # moves go on (bounded) until each worker has written and read the tag.
    for n in range(MOVES_MAX):
        if n >= MOVES and both_workers_moved_and_read():
            break
        image = images[(n + 1) % 3]
        retag(instance, image, "latest")  # a fresh connection: either worker writes
        for _ in range(3):  # and fresh connections read, on either worker
            assert digest_through(instance, repo, "latest") == image.digest, n
            assert digest_through(instance, repo, "latest", "HEAD") == image.digest, n
    assert both_workers_moved_and_read()
    # The moves ran with the fast path on: reads need nothing from S3 still.
    assert sent_during(instance, [path] * 10) == {}


def test_writer_outside_is_seen_once_the_key_expires(
    instance: RegistryProcess, seaweedfs: SeaweedFS
) -> None:
    """A zot, or an S3 client, writing index.json straight into the bucket does not touch
    the key: readers may serve the previous index until it expires (VERSION_TTL), then read
    storage. The test makes the key expire at once by moving its expiry time."""
    repo = unique_repo("sqout")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        first = push_image(client, repo, "t")
        second = push_image(client, repo, "other")
    wait_fast([instance], [manifest_path(repo, "t")])
    move_tag_outside(seaweedfs, instance.config, repo, "t", second.digest, "old")
    with sqlite3.connect(meta_db(instance)) as db:
        value, expires = db.execute(
            "SELECT value, expires FROM index_versions WHERE repo = ?", (repo,)
        ).fetchone()
        assert value.startswith(VERSION)
        assert time.time() < expires <= time.time() + VERSION_TTL
        db.execute("UPDATE index_versions SET expires = 0 WHERE repo = ?", (repo,))
    for _ in range(4):  # through either worker
        assert digest_through(instance, repo, "t") == second.digest
        assert digest_through(instance, repo, "old") == first.digest
    wait_fast([instance], [manifest_path(repo, "t")])  # the key is healed


def pulls_and_moves(proc: RegistryProcess, repo: str, images: list[Image]) -> None:
    """Every image pulls by tag and digest, and a tag moved now is read at once."""
    with httpx.Client(base_url=proc.url, timeout=60) as client:
        for n, image in enumerate(images):
            assert_image_pulls(client, image, f"v{n}")
            assert_image_pulls(client, image, image.digest)
    for image in [images[2], images[0]]:
        retag(proc, image, "latest")
        for _ in range(4):
            assert digest_through(proc, repo, "latest") == image.digest
    wait_fast([proc], [manifest_path(repo, "latest")])  # and the keys are kept again


def test_rebuild_meta_then_lost_sqlite_file(instance: RegistryProcess) -> None:
    repo = unique_repo("sqlost")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        images = [push_image(client, repo, f"v{n}") for n in range(3)]
    retag(instance, images[1], "latest")
    wait_fast([instance], [manifest_path(repo, "latest")])
    done = run_cli("rebuild-meta", str(instance.config_path))
    assert done.returncode == 0, done.stderr
    # (The rebuild's own reads heal the keys it cleared: versions read after the clear.)
    pulls_and_moves(instance, repo, images)
    # The sqlite file lost while the instance is down: it starts with an empty store.
    instance.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{meta_db(instance)}{suffix}").unlink(missing_ok=True)
    instance.start()
    pulls_and_moves(instance, repo, images)
