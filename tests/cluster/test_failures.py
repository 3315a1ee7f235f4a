"""Separate storage per member (zot's model): a member down, back up, dying mid-stream;
members whose lists disagree. Shared storage fails over instead: test_shared_storage.py."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import cluster_configs, repo_owned_by, running_cluster, start_members
from tests.support.oci import (
    OCI_MANIFEST,
    assert_error,
    blob_path,
    manifest_path,
    push_blob,
    push_image,
    random_blob,
    uploads_path,
)
from tests.support.server import wait_until


def test_owner_down_is_503_quickly_and_recovers_without_restarting_the_proxy(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, count=2, shared_root=False) as (proxy, owner):
        repo = repo_owned_by(1, count=2, prefix="down")
        with httpx.Client(base_url=proxy.url, timeout=30.0) as client:
            image = push_image(client, repo, "v1")  # also leaves pooled connections to the owner
            owner.stop()
            started = time.monotonic()
            r = client.get(manifest_path(repo, "v1"))
            assert time.monotonic() - started < 3.5
            err = assert_error(r, 503, "UNAVAILABLE")
            assert err["detail"] == {"member": owner.config["cluster"]["members"][1]}
            assert client.get("/livez").status_code == 200
            wait_until(lambda: "cluster member unreachable" in proxy.logs(), timeout=5)
            failed = "request failed: the member that owns the repository is unreachable"
            wait_until(lambda: failed in proxy.logs(), timeout=5)  # the 503: an error line

            owner.start()
            # A POST cannot be retried by the HTTP client on its own; the proxy retries it on a
            # fresh connection because no body byte had left.
            r = client.post(uploads_path(repo), headers={"Content-Length": "0"})
            assert r.status_code == 202, r.text
            r = client.get(manifest_path(repo, "v1"), headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200
            assert r.content == image.manifest


def test_blob_downloads_through_a_member_survive_an_owner_restart(tmp_path: Path) -> None:
    # Blob GETs take the proxy's own pooled connections (cluster/relay.py): one the owner
    # closed by restarting must be neither reused nor turned into a client error.
    with running_cluster(tmp_path, count=2, shared_root=False) as (proxy, owner):
        repo = repo_owned_by(1, count=2, prefix="relay")
        data, digest = random_blob(3 * 1024 * 1024 + 17)
        with httpx.Client(base_url=proxy.url, timeout=30.0) as client:
            push_blob(client, repo, data)
            for _ in range(2):  # the second GET reuses the pooled connection
                r = client.get(blob_path(repo, digest))
                assert r.status_code == 200
                assert r.content == data
            owner.stop()
            err = assert_error(client.get(blob_path(repo, digest)), 503, "UNAVAILABLE")
            assert err["detail"] == {"member": owner.config["cluster"]["members"][1]}
            owner.start()
            for _ in range(2):
                r = client.get(blob_path(repo, digest), headers={"Range": "bytes=5-1048580"})
                assert r.status_code == 206
                assert r.content == data[5:1048581]
            missing = "sha256:" + "0" * 64
            assert_error(client.get(blob_path(repo, missing)), 404, "BLOB_UNKNOWN")


def test_owner_that_never_answers_is_503_at_the_connect_timeout(tmp_path: Path) -> None:
    """Member 1 is a socket whose accept queue is full: the kernel drops further SYNs, as a
    host that went away would, so only the connect timeout (3 s by default) ends the wait."""
    configs = cluster_configs(tmp_path, count=2, shared_root=False)
    dead_port = int(configs[1]["http"]["port"])
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", dead_port))
        listener.listen(0)
        for _ in range(3):  # fill the queue; nothing ever accepts
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", dead_port))
        (proxy,) = start_members(tmp_path, configs[:1])
        stack.callback(proxy.stop)
        repo = repo_owned_by(1, count=2, prefix="dead")
        with httpx.Client(base_url=proxy.url, timeout=30.0) as client:
            started = time.monotonic()
            r = client.get(f"/v2/{repo}/tags/list")
            elapsed = time.monotonic() - started
            err = assert_error(r, 503, "UNAVAILABLE")
            assert err["detail"] == {"member": f"127.0.0.1:{dead_port}"}
            assert 2.5 < elapsed < 5.0, elapsed
            assert client.get("/livez").status_code == 200


def test_owner_dying_mid_download_breaks_the_client_connection(tmp_path: Path) -> None:
    with running_cluster(tmp_path, count=2, shared_root=False) as (proxy, owner):
        repo = repo_owned_by(1, count=2, prefix="midstream")
        data, digest = random_blob(96 * 1024 * 1024)
        with httpx.Client(base_url=owner.url, timeout=60.0) as direct:
            push_blob(direct, repo, data)
        received = 0
        with (
            httpx.Client(base_url=proxy.url, timeout=60.0) as client,
            pytest.raises(httpx.HTTPError),
            client.stream("GET", blob_path(repo, digest)) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(data))
            for chunk in r.iter_bytes(64 * 1024):
                received += len(chunk)
                if owner.proc is not None and owner.proc.poll() is None:
                    owner.kill()
        assert received < len(data)
        assert "cluster member unreachable" in proxy.logs()


def test_members_that_disagree_on_the_list_get_508_not_a_second_hop(tmp_path: Path) -> None:
    configs = cluster_configs(tmp_path, count=2, shared_root=False)
    # Member 1 lists the members in the other order: whatever member 0 forwards to it,
    # member 1 believes member 0 owns.
    configs[1]["cluster"]["members"].reverse()
    procs = start_members(tmp_path, configs)
    try:
        repo = repo_owned_by(1, count=2, prefix="disagree")
        with httpx.Client(base_url=procs[0].url, timeout=30.0) as client:
            r = client.get(manifest_path(repo, "v1"))
            assert_error(r, 508, "LOOP_DETECTED")
            r = client.post(uploads_path(repo), headers={"Content-Length": "0"})
            assert_error(r, 508, "LOOP_DETECTED")
            assert client.get("/livez").status_code == 200
        assert "member lists of the cluster disagree" in procs[1].logs()
    finally:
        for proc in procs:
            proc.stop()
