"""zot's `storage.maxRepos` on a real server (two workers): manifest pushes into new
repositories are refused with 429 TOOMANYREQUESTS once that many repositories hold
manifests; uploads, and pushes into repositories that count, go on; a repository emptied by
deletes still counts, as in zot."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.oci import (
    assert_error,
    push_blob,
    push_image,
    push_manifest,
    push_small_image,
    small_image,
)
from tests.support.rawhttp import start_request
from tests.support.server import base_config, running_registry


def _refused(client: httpx.Client, repo: str, limit: int = 2) -> bytes:
    """Blobs uploaded to `repo` (allowed), then its manifest refused; the manifest."""
    answer, body = push_small_image(client, repo, "v1")
    assert assert_error(answer, 429, "TOOMANYREQUESTS")["detail"] == {"limit": str(limit)}
    return body


def test_max_repos_refuses_manifests_of_new_repositories_past_the_limit(tmp_path: Path) -> None:
    config = base_config(tmp_path / "root", workers=2)
    config["storage"]["maxRepos"] = 2
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        push_image(c, "team/one", "v1")
        two = push_image(c, "team/two", "v1")
        body = _refused(c, "team/three")
        assert not c.get("/v2/team/three/tags/list").json()["tags"]  # its blobs only
        # The repositories holding manifests take more, by tag and by digest.
        push_image(c, "team/one", "v2")
        untagged = push_image(c, "team/two")
        # Every manifest of team/two deleted: as in zot, it still counts, and takes pushes.
        for image in (two, untagged):
            assert c.delete(f"/v2/team/two/manifests/{image.digest}").status_code == 202
        _refused(c, "team/three")
        push_image(c, "team/two", "again")
    # A larger quota, after a restart: team/three takes its place, and counts from then on.
    config["storage"]["maxRepos"] = 3
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert push_manifest(c, "team/three", "v1", body).status_code == 201
        for repo in ("team/one", "team/two", "team/three"):
            push_image(c, repo, "more")
        _refused(c, "team/four", limit=3)


def test_concurrent_pushes_into_new_repositories_never_pass_the_limit(tmp_path: Path) -> None:
    """Eight clients, each with its own new repository, put their manifests at the same
    moment, spread over two workers: exactly `maxRepos` are stored."""
    config = base_config(tmp_path / "root", workers=2)
    config["storage"]["maxRepos"] = 3
    with running_registry(tmp_path, config) as proc:
        body, _, blobs = small_image("race")
        clients = [httpx.Client(base_url=proc.url, timeout=30) for _ in range(8)]
        for n, c in enumerate(clients):
            for blob in blobs:
                push_blob(c, f"race/r{n}", blob)
        start = threading.Barrier(len(clients))

        def put(n: int) -> int:
            start.wait(timeout=30)
            return push_manifest(clients[n], f"race/r{n}", "v1", body).status_code

        with ThreadPoolExecutor(len(clients)) as pool:
            statuses = list(pool.map(put, range(len(clients))))
        for c in clients:
            c.close()
        assert sorted(statuses) == [201] * 3 + [429] * 5, statuses


def test_a_slow_manifest_body_does_not_hold_up_pushes_into_other_new_repositories(
    tmp_path: Path,
) -> None:
    """The quota is checked once the manifest's body is in: a client whose body trickles
    does not hold the instance's quota lock, so a push into another new repository goes on."""
    config = base_config(tmp_path / "root", workers=1)
    config["storage"]["maxRepos"] = 10
    body, _, blobs = small_image("slow")
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        for repo in ("slow/a", "fast/b"):
            for blob in blobs:
                push_blob(c, repo, blob)
        headers = {
            "Content-Type": "application/vnd.oci.image.manifest.v1+json",
            "Content-Length": str(len(body)),
        }
        # Sent first, so it is the first to reach the quota (had it taken the lock on
        # arrival, the push below would wait for this body, which never comes).
        stalled = start_request(proc.port, "PUT", "/v2/slow/a/manifests/v1", headers, timeout=30)
        try:
            stalled.sendall(body[:10])
            quick = httpx.put(
                f"{proc.url}/v2/fast/b/manifests/v1",
                content=body,
                headers={"Content-Type": headers["Content-Type"]},
                timeout=10,
            )
            assert quick.status_code == 201
        finally:
            stalled.close()
