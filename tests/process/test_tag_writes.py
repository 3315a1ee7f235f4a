"""Tag writes to one repository from many clients at once, coalesced into few index.json
writes (registry/writer.py): none is lost, also when the whole instance is killed mid-way or
the worker writing for both is (stopped, then killed, with the other's writes handed to it),
and the index stays one that zot and `skopeo oci:` read."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from ocireg.registry import handoff, writer
from tests.process.conftest import StartRegistry
from tests.process.helpers import (
    OCI_MANIFEST,
    assert_store_sound,
    fresh_client,
    served_by,
    serving_processes,
)
from tests.support.oci import Image, push_image, push_manifest
from tests.support.server import RegistryProcess, wait_until
from tests.support.threads import Background
from tests.support.tools import require

WRITERS = 8
REPO = "tags/many"
REF_NAME = "org.opencontainers.image.ref.name"
REDONE = "handed-over index writes not answered"  # logged by registry/writer.py
CLIENTS = 3  # per worker


def test_concurrent_tag_writes_then_sigkill_lose_no_acknowledged_tag(
    start_registry: StartRegistry,
) -> None:
    registry = start_registry(workers=2)
    with fresh_client(registry) as c:
        image = push_image(c, REPO, "base")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(n: int) -> None:
        with fresh_client(registry, timeout=30) as c:
            for i in range(100_000):
                if stop.is_set():
                    return
                tag = f"w{n}-{i}"
                try:
                    r = push_manifest(c, REPO, tag, image.manifest)
                except httpx.TransportError:
                    return  # the server is gone
                if r.status_code == 201:
                    with lock:
                        acked.append(tag)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= 400, timeout=120)
        registry.kill()  # main process and workers at once, writes in flight
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    written = list(acked)
    index = json.loads((registry.root / REPO / "index.json").read_bytes())
    on_disk = {
        d["annotations"]["org.opencontainers.image.ref.name"]
        for d in index["manifests"]
        if "annotations" in d
    }
    assert set(written) <= on_disk, sorted(set(written) - on_disk)[:10]
    registry.start()
    with fresh_client(registry) as c:
        tags = c.get(f"/v2/{REPO}/tags/list").json()["tags"]
        assert set(written) <= set(tags)
        for tag in written[-20:]:
            r = c.head(f"/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert r.headers["docker-content-digest"] == image.digest


def _lock_file(registry: RegistryProcess) -> Path:
    key = hashlib.sha256(f"repo:{REPO}".encode()).hexdigest()[:40]
    return registry.root / ".ocireg" / "locks" / f"{key}.lock"


def _lock_holder(registry: RegistryProcess) -> int | None:
    """The worker holding REPO's lock: the one the kernel lists as holding the flock of its
    lock file (/proc/locks), when the note it left there (registry/locks.py: the address
    where it takes the other workers' tag writes) names it too."""
    path = _lock_file(registry)
    try:
        note, inode = path.read_bytes(), path.stat().st_ino
    except FileNotFoundError:
        return None
    if not note.startswith(b"\0ocireg-"):
        return None
    noted = int(note.split(b"-")[1])
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF" (a waiter has "->" after "1:")
        held = fields[1] == "FLOCK" and int(fields[4]) == noted
        if held and int(fields[5].rsplit(":", 1)[1]) == inode:
            return noted
    return None


def _journalled_batches(registry: RegistryProcess) -> list[list[str]]:
    """The tags of each index write still in the metadata store's journal."""
    db = sqlite3.connect(f"file:{registry.root / '.ocireg' / 'meta.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT change FROM index_changes WHERE repo = ?", (REPO,)).fetchall()
    finally:
        db.close()
    batches = []
    for (change,) in rows:
        entry = json.loads(change)
        changes = entry[1] if entry[0] == "batch" else [entry]
        batches.append([c[1] for c in changes if c[0] == "set_tag"])
    return batches


def _log_entries(registry: RegistryProcess, message: str) -> list[dict[str, object]]:
    entries = []
    for line in registry.log_path.read_text(errors="replace").splitlines():
        if message in line:
            with contextlib.suppress(ValueError):  # a line being written
                entries.append(json.loads(line))
    return entries


def _large_repository(registry: RegistryProcess) -> Image:
    """REPO with LARGE tags and more (writes are shared between workers from there on),
    written as another tool would, with the instance stopped."""
    with fresh_client(registry) as c:
        image = push_image(c, REPO, "base")
    registry.stop()
    path = registry.root / REPO / "index.json"
    index = json.loads(path.read_bytes())
    (desc,) = index["manifests"]
    index["manifests"] += [
        {**desc, "annotations": {REF_NAME: f"old{i}"}} for i in range(writer.LARGE)
    ]
    path.write_text(json.dumps(index))
    registry.start()
    return image


def _writer_client(registry: RegistryProcess) -> httpx.Client:
    """A client whose connection stays where the kernel put it: httpx drops a connection
    idle for 5 s and opens another, which may go to the other worker."""
    return httpx.Client(
        base_url=registry.url, timeout=30, limits=httpx.Limits(keepalive_expiry=None)
    )


def _two_workers(registry: RegistryProcess) -> set[int]:
    """The two workers, once both listen (the second may start later)."""
    found: set[int] = wait_until(lambda: (s := serving_processes(registry)) and len(s) == 2 and s)
    return found


def _clients_per_worker(registry: RegistryProcess, workers: set[int]) -> list[httpx.Client]:
    """CLIENTS connections held by each of the two workers (the kernel picks the worker).
    Only to spread the writes: which worker answered a tag is read from the access log."""
    clients: list[tuple[httpx.Client, int]] = []
    for _ in range(60):
        c = _writer_client(registry)
        r = c.get("/v2/")
        assert r.status_code == 200
        clients.append((c, served_by(registry, r)))
        if all(sum(1 for _, p in clients if p == w) >= CLIENTS for w in workers):
            break
    kept = [c for w in workers for c in [c for c, p in clients if p == w][:CLIENTS]]
    for c, _ in clients:
        if c not in kept:
            c.close()
    assert len(kept) == 2 * CLIENTS, "connections on one worker"
    return kept


@dataclass
class _Answer:
    pid: int  # the worker that answered
    start: float  # epoch seconds
    end: float


def _answers(registry: RegistryProcess) -> dict[str, _Answer]:
    """The tags answered 201 so far, by the workers' access log."""
    found = {}
    for e in _log_entries(registry, '"request"'):
        path = str(e.get("path", ""))
        if e.get("method") == "PUT" and e.get("status") == 201 and "/manifests/w" in path:
            end = datetime.fromisoformat(str(e["time"]).replace("Z", "+00:00")).timestamp()
            duration = float(str(e["duration_ms"])) / 1000
            found[path.rsplit("/", 1)[1]] = _Answer(int(str(e["pid"])), end - duration, end)
    return found


def _answered_by(registry: RegistryProcess, pid: int, after: float = 0.0) -> int:
    return sum(1 for a in _answers(registry).values() if a.pid == pid and a.end > after)


class _Writers(Background):
    """One thread per client, each tagging the image w<n>-<i>, i = 0, 1, ... until stopped.
    A client whose worker was killed carries on with a new connection."""

    def __init__(
        self, registry: RegistryProcess, image: Image, clients: list[httpx.Client]
    ) -> None:
        self.registry, self.image = registry, image
        self.acked: list[str] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        super().__init__([functools.partial(self._write, n, c) for n, c in enumerate(clients)])

    def _write(self, n: int, client: httpx.Client) -> None:
        for i in range(100_000):
            if self.stopping.is_set():
                break
            tag = f"w{n}-{i}"
            try:
                r = push_manifest(client, REPO, tag, self.image.manifest)
            except httpx.TransportError:  # its worker was killed: carry on, reconnected
                client.close()
                client = _writer_client(self.registry)
                continue
            with self.lock:
                if r.status_code == 201:
                    self.acked.append(tag)
                else:
                    self.failures.append(f"{tag}: {r.status_code} {r.text[:200]}")
        client.close()

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def tags(self) -> list[str]:
        with self.lock:
            return list(self.acked)

    def mixed_batch(self) -> bool:
        """Whether one index write held tags answered by both workers: the holder wrote
        tags handed over by the other worker."""
        answers = _answers(self.registry)
        for tags in _journalled_batches(self.registry):
            if len({answers[t].pid for t in tags if t in answers}) == 2:
                return True
        return False


def _assert_all_landed(registry: RegistryProcess, image: Image, tags: list[str]) -> None:
    """Every tag in `tags` is in index.json (which parses) under the image, listed, and the
    store is sound."""
    index = json.loads((registry.root / REPO / "index.json").read_bytes())
    on_disk = {
        d["annotations"][REF_NAME]: d["digest"] for d in index["manifests"] if "annotations" in d
    }
    assert not set(tags) - set(on_disk), sorted(set(tags) - set(on_disk))[:10]
    assert {on_disk[t] for t in tags} == {image.digest}
    with fresh_client(registry) as c:
        listed = c.get(f"/v2/{REPO}/tags/list").json()["tags"]
        assert set(tags) <= set(listed)
    assert_store_sound(registry.root)


def test_tag_writes_from_both_workers_are_written_together_and_all_land(
    start_registry: StartRegistry,
) -> None:
    """Cross-worker group commit (registry/writer.py), no crash: the worker holding the
    lock writes the other's tags too, and every acknowledged tag of both is stored."""
    registry = start_registry(workers=2)
    image = _large_repository(registry)
    workers = _two_workers(registry)
    with _Writers(registry, image, _clients_per_worker(registry, workers)) as writers:
        wait_until(lambda: writers.count() >= 300 and writers.mixed_batch(), timeout=120)
        # Both workers' clients are answered, not one starved by the other.
        wait_until(lambda: all(_answered_by(registry, w) >= 50 for w in workers), timeout=120)
    assert not writers.failures, writers.failures[:5]
    _assert_all_landed(registry, image, writers.tags())


def _stop_lock_holder(registry: RegistryProcess, live: set[int]) -> int:
    """SIGSTOP the worker holding REPO's lock, and return it once it is seen (stopped)
    still holding it; a worker stopped just after letting go is let go on again."""

    def stopped_holding() -> int | None:
        holder = _lock_holder(registry)
        if holder not in live:
            return None
        os.kill(holder, signal.SIGSTOP)
        if _lock_holder(registry) == holder:
            return holder
        os.kill(holder, signal.SIGCONT)
        return None

    found: int = wait_until(stopped_holding, timeout=60, interval=0.01)
    return found


def _waiting_on(registry: RegistryProcess, holder: int, since: int) -> int:
    """How many times, from the `since`th SLOW line of the log on, a worker said its
    handed-over writes wait for `holder`'s answer (registry/handoff.py, after ANSWER_SLOW)."""
    entries = _log_entries(registry, handoff.SLOW)[since:]
    return sum(1 for e in entries if e["holder"] == str(holder))


def _redone(registry: RegistryProcess, since: int, error: str) -> int:
    """How many times, from the `since`th REDONE line of the log on, a worker took back
    the writes it had handed over, for `error`."""
    entries = _log_entries(registry, REDONE)[since:]
    return sum(1 for e in entries if str(e["error"]).startswith(error))


def _stop_holder_with_writes_handed_to_it(registry: RegistryProcess, live: set[int]) -> int:
    """Stop the lock holder, and return it once the other worker says that writes it
    handed over wait for it. When the other worker was itself waiting for the lock at the
    stop (writes declined twice are not handed over again), nothing is handed over: the
    holder is let go on and stopped again later."""

    def stopped_with_writes_waiting() -> int | None:
        since = len(_log_entries(registry, handoff.SLOW))
        holder = _stop_lock_holder(registry, live)
        try:
            wait_until(lambda: _waiting_on(registry, holder, since), timeout=8)
        except TimeoutError:
            os.kill(holder, signal.SIGCONT)
            return None
        return holder

    found: int = wait_until(stopped_with_writes_waiting, timeout=120)
    return found


def test_tag_writes_handed_to_a_stopped_then_killed_holder_are_written_by_their_worker(
    start_registry: StartRegistry,
) -> None:
    """The worker holding the lock is stopped while the other worker's tag writes are
    handed to it (the sender's log says they wait for it): the sender stops waiting after
    ANSWER_MAX and waits for the lock; the holder goes on, and all is written. Then the
    holder (either worker) is stopped again with writes handed to it, and killed: the sender
    gets EOF, writes them itself under the lock the kernel took back, and answers 201 only
    then; it goes on answering; every acknowledged tag is stored, readable by `skopeo oci:`."""
    skopeo = require("skopeo")
    registry = start_registry(workers=2)
    image = _large_repository(registry)
    live = _two_workers(registry)
    with _Writers(registry, image, _clients_per_worker(registry, live)) as writers:
        # Writes are handed over: one index write held tags answered by both workers.
        wait_until(lambda: writers.count() >= 200 and writers.mixed_batch(), timeout=120)

        # A holder that does not answer: the sender gives up on it after ANSWER_MAX.
        redone_before = len(_log_entries(registry, REDONE))
        holder = _stop_holder_with_writes_handed_to_it(registry, live)
        try:
            wait_until(lambda: _redone(registry, redone_before, "no answer"), timeout=60)
        finally:
            os.kill(holder, signal.SIGCONT)
        resumed = time.time()
        wait_until(lambda: all(_answered_by(registry, w, resumed) >= 20 for w in live), timeout=60)

        # A holder killed while writes handed to it wait for its answer.
        redone_before = len(_log_entries(registry, REDONE))
        holder = _stop_holder_with_writes_handed_to_it(registry, live)
        survivor = next(iter(live - {holder}))
        killed = time.time()
        os.kill(holder, signal.SIGKILL)  # a stopped process dies of it too
        # The handed-over writes in flight failed with the connection (EOF), and are
        # written by the survivor itself, under the lock the kernel took back.
        wait_until(lambda: _redone(registry, redone_before, "connection lost"), timeout=60)
        # The survivor goes on answering: its writes, and those of the killed worker's
        # clients come to it (or to the worker Granian starts instead).
        wait_until(lambda: _answered_by(registry, survivor, killed) >= 50, timeout=60)
        # The kernel took the dead holder's flock back.
        assert f" {holder} " not in Path("/proc/locks").read_text()
    assert not writers.failures, writers.failures[:5]
    written = writers.tags()
    # The survivor's writes that were waiting for the holder when it was killed.
    pending = [
        tag
        for tag, a in _answers(registry).items()
        if a.pid == survivor and a.start < killed < a.end
    ]
    assert pending
    assert set(pending) <= set(written)
    _assert_all_landed(registry, image, written)
    with fresh_client(registry) as c:
        for tag in pending:
            r = c.get(f"/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200
            assert r.headers["docker-content-digest"] == image.digest
            assert r.content == image.manifest
    for tag in pending:
        raw = subprocess.run(
            [skopeo, "inspect", "--raw", f"oci:{registry.root / REPO}:{tag}"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert raw == image.manifest
