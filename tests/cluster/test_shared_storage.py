"""Members on shared storage (one root, or one bucket): each finds out by itself that its peers
share its storage, answers reads and uploads without a hop, sends only index writes to the
owner, and answers a down owner's requests itself. Run on one filesystem root and on
SeaweedFS + Redis."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import use_backend
from tests.ops.conftest import scrape, value
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import (
    OCI_MANIFEST,
    blob_path,
    manifest_path,
    push_image,
    push_manifest,
    sha256_digest,
)
from tests.support.server import RegistryProcess, wait_until

METRICS = {"metrics": {"enable": True, "prometheus": {"path": "/metrics"}}}
PROXIED = "ocireg_proxy_requests_total"
TAGS = 400  # written by the two survivors at once


def cluster_status(member: RegistryProcess) -> dict[str, Any]:
    r = httpx.get(f"{member.url}/v2/_ocireg/cluster", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def peers_view(member: RegistryProcess) -> dict[int, dict[str, Any]]:
    return {m["index"]: m for m in cluster_status(member)["members"] if not m["local"]}


def wait_all_shared(members: list[RegistryProcess], timeout: float = 15) -> None:
    def shared() -> bool:
        return all(all(p["shared"] for p in peers_view(m).values()) for m in members)

    wait_until(shared, timeout=timeout)


BACKENDS = ["filesystem", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def shared_configs(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> list[dict[str, Any]]:
    configs = cluster_configs(tmp_path, count=3, extensions=METRICS)
    if backend == "s3":
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        redis: Redis = request.getfixturevalue("redis_server")
        root, prefix = f"/c{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
        for i, cfg in enumerate(configs):
            cfg["storage"]["rootDirectory"] = str(tmp_path / f"local-{i}")  # share no disk
            use_backend(cfg, seaweedfs, redis, root, prefix)
    return configs


@contextlib.contextmanager
def running_shared(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[list[RegistryProcess]]:
    with running_members(tmp_path, shared_configs(tmp_path, backend, request)) as procs:
        wait_all_shared(procs)
        yield procs


@pytest.fixture(scope="module", params=BACKENDS)
def steady(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[list[RegistryProcess]]:
    """Three members shared by the tests that stop none of them (each its own repository)."""
    with running_shared(tmp_path_factory.mktemp("steady"), request.param, request) as procs:
        yield procs


@pytest.fixture
def members(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[list[RegistryProcess]]:
    """Three members of the test's own: it kills one."""
    with running_shared(tmp_path, backend, request) as procs:
        yield procs


def test_status_reports_members_shared_and_up(steady: list[RegistryProcess]) -> None:
    status = cluster_status(steady[0])
    assert status["index"] == 0 and status["sharedStorage"] == "auto"
    assert [m["member"] for m in status["members"]] == steady[0].config["cluster"]["members"]
    assert all(p["up"] and p["shared"] and p["lastContact"] for p in peers_view(steady[0]).values())
    assert len({cluster_status(m)["fingerprint"] for m in steady}) == 1


def test_reads_and_uploads_do_not_hop_index_writes_do(steady: list[RegistryProcess]) -> None:
    entry = steady[0]
    repo = repo_owned_by(1, prefix="nohop")
    before = value(scrape(entry.url), PROXIED)
    with httpx.Client(base_url=entry.url, timeout=60) as client:
        image = push_image(client, repo, "v1", layers=2)  # 3 blob uploads + 1 manifest PUT
        assert value(scrape(entry.url), PROXIED) - before == 1
        for _ in range(3):
            assert client.get(manifest_path(repo, "v1")).content == image.manifest
            for layer in image.layers:
                assert client.head(blob_path(repo, sha256_digest(layer))).status_code == 200
            assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        assert value(scrape(entry.url), PROXIED) - before == 1  # no read went anywhere
        assert client.delete(manifest_path(repo, "v1")).status_code == 202
        assert value(scrape(entry.url), PROXIED) - before == 2


def test_no_stale_read_by_tag_through_any_member(steady: list[RegistryProcess]) -> None:
    """Push through one member, read at once through the others, with the tag moving."""
    repo = repo_owned_by(2, prefix="fresh")
    clients = [httpx.Client(base_url=m.url, timeout=60) for m in steady]
    try:
        for round_ in range(12):  # each member writes four times, and reads after every write
            writer = clients[round_ % 3]
            image = push_image(writer, repo, "moving")
            for reader in clients:
                r = reader.get(manifest_path(repo, "moving"), headers={"Accept": OCI_MANIFEST})
                assert r.status_code == 200, (round_, r.text)
                assert r.headers["docker-content-digest"] == image.digest, round_
    finally:
        for c in clients:
            c.close()


def test_owner_killed_its_repositories_fail_over_and_come_back(
    members: list[RegistryProcess],
) -> None:
    """SIGKILL member 2 while clients keep pushing and pulling through members 0 and 1, in
    repositories owned by all three; then restart it."""
    repos = [repo_owned_by(i, prefix=f"failover{i}") for i in range(3)]
    survivors = members[:2]
    pushed: dict[tuple[str, str], str] = {}
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def work(member: RegistryProcess, worker: int) -> None:
        with httpx.Client(base_url=member.url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                repo = repos[n % 3]
                tag = f"w{worker}-{n}"
                try:
                    image = push_image(client, repo, tag)
                    r = client.get(manifest_path(repo, tag), headers={"Accept": OCI_MANIFEST})
                    assert r.status_code == 200 and r.content == image.manifest, r.text
                    with lock:
                        pushed[(repo, tag)] = image.digest
                except (AssertionError, httpx.HTTPError) as exc:
                    with lock:
                        failures.append(f"{member.url} {repo}:{tag}: {exc}")
                n += 1

    threads = [
        threading.Thread(target=work, args=(m, i), daemon=True) for i, m in enumerate(survivors)
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(pushed) >= 6, timeout=30)
        members[2].stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: all(not peers_view(m)[2]["up"] for m in survivors), timeout=10)
        detected = time.monotonic() - killed
        count = len(pushed)
        wait_until(lambda: len(pushed) >= count + 12, timeout=60)
        members[2].start()
        wait_until(lambda: all(peers_view(m)[2]["up"] for m in survivors), timeout=30)
        count = len(pushed)
        wait_until(lambda: len(pushed) >= count + 6, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    print(f"member down detected by both survivors in {detected:.2f} s")
    assert detected < 5, detected
    assert not failures, failures[:5]
    for member in survivors:  # answered by failover: warnings, never an error line
        errors = [
            line
            for line in member.log_path.read_text().splitlines()
            if '"level": "error"' in line and "unreachable" in line
        ]
        assert not errors, errors[:3]
    for member in members:  # everything, through every member, the restarted one too
        with httpx.Client(base_url=member.url, timeout=30) as client:
            for (repo, tag), digest in sorted(pushed.items()):
                r = client.head(manifest_path(repo, tag), headers={"Accept": OCI_MANIFEST})
                assert r.status_code == 200, (member.url, repo, tag)
                assert r.headers["docker-content-digest"] == digest


def test_two_members_writing_one_repository_lose_no_tag(members: list[RegistryProcess]) -> None:
    """With the owner down both survivors write the repository's index at once: 400 tags
    split over two members, every one present afterwards (200 writes from each side,
    interleaved, are plenty to show a lost update)."""
    repo = repo_owned_by(2, prefix="contended")
    with httpx.Client(base_url=members[0].url, timeout=30) as client:
        image = push_image(client, repo, "base")
    members[2].stop(signal.SIGKILL)
    survivors = members[:2]
    wait_until(lambda: all(not peers_view(m)[2]["up"] for m in survivors), timeout=10)
    errors: list[str] = []

    def write(member: RegistryProcess, tags: range) -> None:
        with httpx.Client(base_url=member.url, timeout=30) as client:
            for n in tags:
                r = push_manifest(client, repo, f"t{n}", image.manifest)
                if r.status_code != 201:
                    errors.append(f"t{n}: {r.status_code} {r.text}")

    threads = [
        threading.Thread(target=write, args=(m, range(i, TAGS, 2))) for i, m in enumerate(survivors)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:5]
    with httpx.Client(base_url=members[1].url, timeout=30) as client:
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert set(tags) == {"base", *(f"t{n}" for n in range(TAGS))}
