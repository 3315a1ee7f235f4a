"""Garbage collection through the real `ocireg gc` command against a serving registry, on
the filesystem and on SeaweedFS + Redis (the `gc_registry` fixture runs each test on both)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ocireg.config import load_config
from ocireg.server.maintenance import checkpoint_of
from tests.ops.conftest import Stored, StoredInBucket, config_variant, run_gc
from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    assert_error,
    descriptor,
    encode_json,
    image_index,
    image_manifest,
    push_artifact,
    push_blob,
    push_image,
    push_manifest,
    random_bytes,
    sha256_digest,
    unique_repo,
)
from tests.support.rawhttp import SocketResponse, read_response, start_request
from tests.support.server import RegistryProcess, ocireg_env, run_cli, wait_until


def blobs_of(image: Image) -> set[str]:
    return {image.digest, sha256_digest(image.config)} | {sha256_digest(x) for x in image.layers}


def index_digests(stored: Stored, repo: str) -> set[str]:
    doc = json.loads(stored.read(f"{repo}/index.json"))
    return {d["digest"] for d in doc["manifests"]}


def wait_until_collectable(
    proc: RegistryProcess, repo: str, blob: str, config: Path | None = None
) -> dict[str, object]:
    """Poll `gc --dry-run` until `blob` (pushed last) is old enough to be reported, and the
    report stays the same from one run to the next: on S3 a blob's time counts whole seconds
    (`LastModified`) while a manifest's push time is noted to the microsecond, so a manifest
    pushed before `blob` may still be young when `blob` is not."""
    path = config or proc.config_path

    def settled() -> dict[str, object] | None:
        report = run_gc(path, dry_run=True, repos=[repo]).get(repo)
        if not report or blob not in report["blobs"]:
            return None
        return report if run_gc(path, dry_run=True, repos=[repo]).get(repo) == report else None

    return wait_until(settled, timeout=30, interval=0.1)  # type: ignore[no-any-return]


def assert_pulls(client: httpx.Client, repo: str, manifests: set[str], blobs: set[str]) -> None:
    for digest in manifests:
        r = client.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": "*/*"})
        assert r.status_code == 200, (digest, r.text)
        assert sha256_digest(r.content) == digest
    for digest in blobs - manifests:
        r = client.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200, (digest, r.text)
        assert sha256_digest(r.content) == digest


def test_gc_keeps_everything_reachable_and_removes_exactly_the_rest(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    c = gc_client
    other = unique_repo("ops-other")
    # Reachable: a tagged image and its untagged referrer; a tagged index, its untagged
    # children and a referrer of one child; the newer image under an overwritten tag.
    image = push_image(c, repo, "v1", layers=2)
    referrer = push_artifact(c, repo, image, "application/vnd.example.sbom")
    child_a, child_b = push_image(c, repo), push_image(c, repo)
    body, index = image_index([child_a.descriptor(), child_b.descriptor()])
    assert push_manifest(c, repo, "multi", body, OCI_INDEX).status_code == 201
    child_referrer = push_artifact(c, repo, child_a, "application/vnd.example.sig")
    old = push_image(c, repo, "latest")
    new = push_image(c, repo, "latest")
    # Unreachable: an untagged image and its referrer, the image that lost "latest", an image
    # whose tag was deleted, a blob no manifest names.
    garbage = push_image(c, repo)
    garbage_referrer = push_artifact(c, repo, garbage, "application/vnd.example.sbom")
    untagged = push_image(c, repo, "gone")
    assert c.delete(f"/v2/{repo}/manifests/gone").status_code == 202
    # The garbage image's layer is mounted into another repository and used there.
    shared = sha256_digest(garbage.layers[0])
    r = c.post(f"/v2/{other}/blobs/uploads/", params={"mount": shared, "from": repo})
    assert r.status_code == 201, r.text
    other_config = encode_json({"other": True})
    push_blob(c, other, other_config)
    other_body, other_digest = image_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", other_config),
        [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", garbage.layers[0])],
    )
    assert push_manifest(c, other, "v1", other_body, OCI_MANIFEST).status_code == 201
    orphan = push_blob(c, repo, random_bytes(100))

    kept_manifests = {
        image.digest,
        referrer.digest,
        child_a.digest,
        child_b.digest,
        index,
        child_referrer.digest,
        new.digest,
    }
    kept_blobs = {index}.union(
        *(blobs_of(i) for i in (image, referrer, child_a, child_b, child_referrer, new))
    )
    removed_manifests = {garbage.digest, garbage_referrer.digest, old.digest, untagged.digest}
    all_blobs = stored.blob_files(repo)
    assert all_blobs >= kept_blobs | {orphan}

    planned = wait_until_collectable(gc_registry, repo, orphan)
    assert set(planned["manifests"]) == removed_manifests  # type: ignore[arg-type]
    assert set(planned["blobs"]) == all_blobs - kept_blobs  # type: ignore[arg-type]

    report = run_gc(gc_registry.config_path, repos=[repo, other])[repo]
    assert report["dryRun"] is False
    assert set(report["manifests"]) == removed_manifests
    assert set(report["blobs"]) == all_blobs - kept_blobs
    assert stored.blob_files(repo) == kept_blobs
    assert index_digests(stored, repo) == kept_manifests

    assert_pulls(c, repo, kept_manifests, kept_blobs)
    assert c.get(f"/v2/{repo}/tags/list").json()["tags"] == ["latest", "multi", "v1"]
    refs = c.get(f"/v2/{repo}/referrers/{image.digest}").json()["manifests"]
    assert [d["digest"] for d in refs] == [referrer.digest]
    refs = c.get(f"/v2/{repo}/referrers/{child_a.digest}").json()["manifests"]
    assert [d["digest"] for d in refs] == [child_referrer.digest]
    for digest in removed_manifests:
        r = c.get(f"/v2/{repo}/manifests/{digest}")
        assert_error(r, 404, "MANIFEST_UNKNOWN")
    assert_error(c.get(f"/v2/{repo}/blobs/{orphan}"), 404, "BLOB_UNKNOWN")
    assert_error(c.get(f"/v2/{repo}/blobs/{shared}"), 404, "BLOB_UNKNOWN")
    # The other repository's copy of the shared layer is its own and stays.
    assert_pulls(c, other, {other_digest}, {other_digest, shared, sha256_digest(other_config)})

    # A second run finds nothing more to do.
    again = run_gc(gc_registry.config_path, repos=[repo])[repo]
    assert (again["manifests"], again["blobs"], again["uploads"]) == ([], [], [])


def test_gc_dry_run_changes_nothing(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    garbage = push_image(gc_client, repo)
    orphan = push_blob(gc_client, repo, random_bytes(64))
    planned = wait_until_collectable(gc_registry, repo, orphan)
    assert planned["dryRun"] is True
    assert planned["manifests"] == [garbage.digest]
    before = stored.snapshot()
    again = run_gc(gc_registry.config_path, dry_run=True)[repo]
    assert again == planned
    assert stored.snapshot() == before
    assert_pulls(gc_client, repo, {garbage.digest}, blobs_of(garbage) | {orphan})


def test_gc_delay_keeps_younger_content(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    garbage = push_image(gc_client, repo)
    orphan = push_blob(gc_client, repo, random_bytes(64))
    wait_until_collectable(gc_registry, repo, orphan)  # older than 1s now
    hour = config_variant(gc_registry, "delay-1h", gcDelay="1h")
    report = run_gc(hour, repos=[repo])[repo]
    assert (report["manifests"], report["blobs"]) == ([], [])
    assert stored.blob_files(repo) == blobs_of(garbage) | {orphan}
    report = run_gc(gc_registry.config_path, repos=[repo])[repo]
    assert report["manifests"] == [garbage.digest]
    assert stored.blob_files(repo) == set()


def test_gc_command_resumes_after_an_interrupted_run(
    gc_registry: RegistryProcess, gc_client: httpx.Client, repo: str
) -> None:
    """A run that stopped (SIGKILL, restart) left the last repository it finished in its
    checkpoint; the next `ocireg gc` starts after it, and `--from-start` ignores it."""
    names = [f"{repo}/{n}" for n in ("a", "b", "c")]
    for name in names:
        push_image(gc_client, name, "v1")
    checkpoint = checkpoint_of(load_config(gc_registry.config_path), "gc")
    checkpoint.save(names[1])
    # A run over named repositories collects those only and leaves the checkpoint alone.
    assert list(run_gc(gc_registry.config_path, repos=[names[0]])) == [names[0]]
    assert checkpoint.load() == names[1]
    bad = run_cli("gc", str(gc_registry.config_path), "--repository", "../x", timeout=120)
    assert bad.returncode == 2 and "invalid repository name: '../x'" in bad.stderr
    resumed = run_gc(gc_registry.config_path)
    assert names[2] in resumed and names[0] not in resumed and names[1] not in resumed
    assert not checkpoint.path.exists()  # it reached the end: the next run is whole
    assert set(names) <= set(run_gc(gc_registry.config_path))
    checkpoint.save(names[1])
    result = run_cli("gc", str(gc_registry.config_path), "--from-start", timeout=120)
    assert result.returncode == 0, result.stderr
    assert set(names) <= {json.loads(line)["repository"] for line in result.stdout.splitlines()}


def test_gc_removes_stale_uploads_only(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """Idle sessions go, with their bytes: on S3 the multipart upload holding the parts sent
    so far is aborted too (ListMultipartUploads no longer shows it)."""
    c = gc_client
    push_image(c, repo, "v1")
    stale = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    # 9 MiB: on S3 an 8 MiB part goes up in a multipart upload, the rest waits in the state.
    assert c.patch(stale, content=random_bytes(9 << 20)).status_code == 202
    small = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    assert c.patch(small, content=b"abc").status_code == 202
    stale_ids = [u.rsplit("/", 1)[1] for u in (stale, small)]
    if isinstance(stored, StoredInBucket):
        assert stored.multipart_uploads(repo) == [f"{repo}/.uploads/{stale_ids[0]}"]
        stale_ids.append(stored.abandon_multipart_upload(repo))
    stale_ids.sort()
    # Idle for longer than gcDelay, then a fresh session that must survive the run. The
    # fresh one must still be younger than gcDelay when the run reaches this repository:
    # with 4 s, starting `ocireg gc` and collecting the repositories before this one took
    # longer than that on a loaded machine (and the fresh session went too); 10 s leaves room.
    config = config_variant(gc_registry, "delay-10s", gcDelay="10s")
    wait_until(
        lambda: run_gc(config, dry_run=True, repos=[repo])[repo]["uploads"] == stale_ids,
        timeout=40,
    )
    fresh = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    fresh_id = fresh.rsplit("/", 1)[1]

    report = run_gc(config, repos=[repo])[repo]
    assert report["uploads"] == stale_ids
    assert not any(stored.session_exists(repo, s) for s in stale_ids)
    assert stored.multipart_uploads(repo) == []
    assert stored.session_exists(repo, fresh_id)
    assert_error(c.get(stale), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(c.patch(stale, content=b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    data = random_bytes(32)
    r = c.put(fresh, params={"digest": sha256_digest(data)}, content=data)
    assert r.status_code == 201, r.text
    assert fresh_id not in report["uploads"]


def test_gc_removes_old_files_left_by_killed_writers(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """A sync copy killed after storing its blob leaves its marker in `.uploads` (a dot name
    that no session listing takes), and a worker killed while writing index.json its
    temporary file beside it. GC removes such files once older than gcDelay and keeps
    younger ones; a dry run only reports them. Both are written on local storage only, so
    on S3 there is nothing to look for."""
    if isinstance(stored, StoredInBucket):
        pytest.skip("sync copies and index writes leave such files on local storage only")
    push_image(gc_client, repo, "v1")
    uploads = stored.root / repo / ".uploads"
    uploads.mkdir(exist_ok=True)
    old, young = uploads / f".sync-sha256-{'a' * 64}", uploads / f".sync-sha256-{'b' * 64}"
    for marker in (old, young):
        marker.write_text("00000000-0000-0000-0000-000000000000\n40\n")
    old_index, young_index = (stored.root / repo / f".index.json.{c * 32}.tmp" for c in "cd")
    for temporary in (old_index, young_index):
        temporary.write_text('{"schemaVersion":2,"manifests":[')
    hours_ago = time.time() - 2 * 3600
    for path in (old, old_index):
        os.utime(path, (hours_ago, hours_ago))
    config = config_variant(gc_registry, "delay-1h", gcDelay="1h")
    removed = sorted([old.name, old_index.name])

    assert sorted(run_gc(config, dry_run=True, repos=[repo])[repo]["uploads"]) == removed
    assert old.exists() and old_index.exists()
    assert sorted(run_gc(config, repos=[repo])[repo]["uploads"]) == removed
    assert not old.exists() and young.exists()
    assert not old_index.exists() and young_index.exists()
    assert gc_client.get(f"/v2/{repo}/manifests/v1").status_code == 200


def test_gc_removes_old_temporaries_of_killed_blob_copies(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """A blob copied between storages (a mount across `subPaths`) is written beside its
    place under a temporary name, then renamed; a process killed in between leaves that
    file, on disk or on S3. GC finds it in the blob listing it makes anyway and removes it
    once older than gcDelay, keeps a younger one, and touches no blob of the image."""
    image = push_image(gc_client, repo, "v1")
    blobs = stored.blob_files(repo)
    old, young = (f"sha256:.{c * 64}.{c * 32}.tmp" for c in "ef")
    for temporary in (old, young):
        stored.write_blob(repo, temporary, b"part of a blob")
    kept = config_variant(gc_registry, "delay-1h", gcDelay="1h")
    assert run_gc(kept, repos=[repo])[repo]["uploads"] == []
    # A temporary's age is its object's LastModified, or its file's last change (ctime,
    # for the links of live copies: `test_gc_keeps_the_hard_link_of_a_live_copy`), which a
    # client cannot set: a short gcDelay instead, and runs until it is older (bounded).
    removing = config_variant(gc_registry, "delay-1s", gcDelay="1s")
    deadline = time.monotonic() + 30
    name = old.split(":")[1]
    while name not in run_gc(removing, dry_run=True, repos=[repo])[repo]["uploads"]:
        assert time.monotonic() < deadline, "the temporary was never reported"
    assert stored.blob_files(repo) == blobs | {old, young}
    assert name in run_gc(removing, repos=[repo])[repo]["uploads"]
    assert old not in stored.blob_files(repo)
    for digest in blobs:
        assert gc_client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200
    assert gc_client.get(f"/v2/{repo}/manifests/v1").content == image.manifest


def test_gc_keeps_the_hard_link_of_a_live_copy(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """A copy or a dedupe on one disk links the blob under its temporary name, then renames
    it: the temporary shares the blob's inode, whose mtime is the blob's own (hours old).
    The link itself is fresh (the inode's ctime), so GC keeps it while gcDelay has not
    passed since, as it keeps any young temporary."""
    if isinstance(stored, StoredInBucket):
        pytest.skip("objects have no hard links")
    push_image(gc_client, repo, "v1")
    blob = next(f for f in sorted(stored.blob_files(repo)))
    path = stored.root / repo / "blobs" / "sha256" / blob.split(":")[1]
    hours_ago = time.time() - 2 * 3600
    os.utime(path, (hours_ago, hours_ago))
    linked = path.with_name(f".{path.name}.{'a' * 32}.tmp")
    os.link(path, linked)  # what storage/filesystem.py's copy holds until its rename
    kept = config_variant(gc_registry, "delay-1h", gcDelay="1h")
    assert run_gc(kept, repos=[repo])[repo]["uploads"] == []
    assert linked.exists()


class Trickle:
    """A PATCH whose body comes one byte every 0.2 s until `finish` sends the rest."""

    def __init__(self, registry: RegistryProcess, location: str, data: bytes) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
        self.sock = start_request(registry.port, "PATCH", location, headers, timeout=60)
        self.data = data
        self.sent = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        # The client's pace (well inside http.bodyIdleTimeout), not a synchronisation.
        while not self.done.wait(0.2) and self.sent < len(self.data) - 1:
            self.sock.sendall(self.data[self.sent : self.sent + 1])
            self.sent += 1

    def finish(self) -> SocketResponse:
        self.done.set()
        self.thread.join(timeout=10)
        with self.sock:
            self.sock.sendall(self.data[self.sent :])
            return read_response(self.sock)


def test_gc_skips_a_session_that_is_receiving_bytes_and_takes_it_next_time(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """Issue 11, finding 3: a PATCH trickling one byte at a time holds its session's lock for
    as long as its client likes. GC neither waits for it nor stops at it: the session is
    reported busy, the repositories after it are collected, and a later run, once the
    session is idle, removes it."""
    c = gc_client
    session_url = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    session = session_url.rsplit("/", 1)[1]
    later = f"{repo}-later"  # collected after `repo` (catalog order)
    orphan = push_blob(c, later, random_bytes(64))
    trickle = Trickle(gc_registry, session_url, random_bytes(100))
    try:
        lock = hashlib.sha256(f"upload:{session}".encode()).hexdigest()[:40]
        wait_until((gc_registry.root / ".ocireg" / "locks" / f"{lock}.lock").exists, timeout=10)
        wait_until_collectable(gc_registry, later, orphan)
        # A dry run says the same, without removing anything.
        both = [repo, later]  # in this order, as a run over every repository visits them
        dry = run_gc(gc_registry.config_path, dry_run=True, repos=both)
        assert dry[repo]["uploadsBusy"] == [session]
        # Bounded: today's GC would wait on the session's lock until the client stops.
        reports = run_gc(gc_registry.config_path, timeout=30, repos=both)
        assert reports[repo]["uploadsBusy"] == [session]
        assert session not in reports[repo]["uploads"]
        assert orphan in reports[later]["blobs"]
        assert stored.session_exists(repo, session)
    finally:
        answer = trickle.finish()
    assert answer.status == 202, answer.body
    assert answer.headers["range"] == "0-99"
    # Idle now: a later run takes it.
    wait_until(
        lambda: session in run_gc(gc_registry.config_path, repos=[repo])[repo]["uploads"],
        timeout=30,
    )
    assert not stored.session_exists(repo, session)


def test_push_while_gc_runs_completes_and_pulls(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """Tags written while GC rewrites index.json all survive; every pushed image pulls."""
    # Old garbage, so that every GC run below really rewrites index.json and deletes files.
    garbage = [push_image(gc_client, repo) for _ in range(3)]
    orphan = push_blob(gc_client, repo, random_bytes(64))
    # An image push takes well under a second even on a loaded machine; 4s leaves room.
    config = config_variant(gc_registry, "delay-4s", gcDelay="4s")
    wait_until_collectable(gc_registry, repo, orphan, config)
    pushed: list[Image] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def pusher() -> None:
        with httpx.Client(base_url=gc_registry.url, timeout=30.0) as c:
            try:
                while not stop.is_set() or len(pushed) < 5:
                    pushed.append(push_image(c, repo, f"t{len(pushed)}", layers=2))
            except BaseException as exc:
                failures.append(exc)

    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        removed: set[str] = set()
        for _ in range(3):
            report = run_gc(config, repos=[repo]).get(repo)
            if report:
                removed |= set(report["manifests"])
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failures, failures
    assert removed == {g.digest for g in garbage}
    tags = gc_client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert sorted(tags) == sorted(f"t{i}" for i in range(len(pushed)))
    for image in pushed:
        assert_pulls(gc_client, repo, {image.digest}, blobs_of(image))


def test_gc_keeps_manifests_listed_only_inside_a_tagged_index(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """Layouts written by tools name only the index in index.json; its children are blobs."""
    c = gc_client
    config, layer = encode_json({"tool": "written"}), random_bytes(200)
    push_blob(c, repo, config)
    push_blob(c, repo, layer)
    child, child_digest = image_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
    )
    push_blob(c, repo, child)  # as a plain blob: index.json never lists it
    body, index = image_index([descriptor(OCI_MANIFEST, child)])
    assert push_manifest(c, repo, "v1", body, OCI_INDEX).status_code == 201
    assert child_digest not in index_digests(stored, repo)
    orphan = push_blob(c, repo, random_bytes(10))
    wait_until_collectable(gc_registry, repo, orphan)
    report = run_gc(gc_registry.config_path, repos=[repo])[repo]
    assert (report["manifests"], report["blobs"]) == ([], [orphan])
    kept = {index, child_digest, sha256_digest(config), sha256_digest(layer)}
    assert stored.blob_files(repo) == kept
    assert_pulls(c, repo, {index, child_digest}, kept)


@pytest.mark.parametrize("gc_registry", ["filesystem"], indirect=True)
def test_gc_killed_midway_leaves_a_consistent_repository(
    gc_registry: RegistryProcess, gc_client: httpx.Client, stored: Stored, repo: str
) -> None:
    """SIGKILL `ocireg gc` while it deletes: every index.json entry still pulls completely,
    and the next run finishes the job."""
    c = gc_client
    kept = push_image(c, repo, "v1")
    garbage = [push_image(c, repo) for _ in range(3)]
    # Many unreferenced blob files (written as a crash or an old tool would leave them) so
    # that the deleting phase lasts long enough to be interrupted.
    blobs_dir = gc_registry.root / repo / "blobs" / "sha256"
    for _ in range(1500):
        data = random_bytes(16)
        (blobs_dir / sha256_digest(data).split(":")[1]).write_bytes(data)
    last = push_blob(c, repo, random_bytes(16))
    wait_until_collectable(gc_registry, repo, last)
    before = len(list(blobs_dir.iterdir()))

    proc = subprocess.Popen(
        [sys.executable, "-m", "ocireg", "gc", str(gc_registry.config_path)],
        env=ocireg_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: proc.poll() is not None or len(list(blobs_dir.iterdir())) < before,
            timeout=60,
            interval=0.002,
        )
    finally:
        proc.kill()
        proc.wait(timeout=30)

    for digest in index_digests(stored, repo):
        r = c.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": "*/*"})
        assert r.status_code == 200, (digest, r.text)
        doc = r.json()
        for desc in [doc["config"], *doc["layers"]]:
            assert c.head(f"/v2/{repo}/blobs/{desc['digest']}").status_code == 200, desc

    run_gc(gc_registry.config_path)
    assert index_digests(stored, repo) == {kept.digest}
    assert stored.blob_files(repo) == blobs_of(kept)
    assert_pulls(c, repo, {kept.digest}, blobs_of(kept))
    assert all(g.digest not in index_digests(stored, repo) for g in garbage)
