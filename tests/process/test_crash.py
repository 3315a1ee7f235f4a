"""kill -9 of a whole instance (main process and workers) while images are being pushed."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from tests.process.conftest import StartRegistry
from tests.process.helpers import (
    OCI_MANIFEST,
    assert_store_sound,
    fresh_client,
    push_blob,
    push_manifest,
    sha256,
)
from tests.support.server import RegistryProcess, wait_until

PUSHERS = 3


@dataclass(frozen=True)
class Pushed:
    repo: str
    tag: str
    manifest: str
    blobs: tuple[str, ...]


def pusher(registry: RegistryProcess, n: int, stop: threading.Event, done: list[Pushed]) -> None:
    """Push whole images (config, two layers, manifest) until the server dies."""
    repo = f"crash/repo{n % 2}"  # two pushers share a repository
    with fresh_client(registry, timeout=30) as c:
        for i in range(10_000):
            if stop.is_set():
                return
            config = b'{"architecture":"amd64","os":"linux","n":"%d-%d"}' % (n, i)
            layers = [os.urandom(300 * 1024), os.urandom(64 * 1024)]
            try:
                for blob in (config, *layers):
                    r = push_blob(c, repo, blob, chunks=3)
                    assert r.status_code == 201, r.text
                digest, _ = push_manifest(c, repo, f"p{n}-{i}", config, layers)
            except httpx.TransportError:
                return  # the server is gone
            done.append(Pushed(repo, f"p{n}-{i}", digest, tuple(map(sha256, (config, *layers)))))


def test_kill_whole_instance_during_pushes_then_restart(start_registry: StartRegistry) -> None:
    registry = start_registry(workers=2)
    stop = threading.Event()
    done: list[Pushed] = []

    with ThreadPoolExecutor(PUSHERS) as pool:
        futures = [pool.submit(pusher, registry, n, stop, done) for n in range(PUSHERS)]
        wait_until(lambda: len(done) >= 2 * PUSHERS, timeout=120)
        # SIGKILL to the process group: main process and every worker at once, mid-push.
        registry.kill()
        stop.set()
        for f in futures:
            f.result(timeout=60)
    completed = list(done)

    report = assert_store_sound(registry.root)
    assert report.indexes >= 2

    # Same config file, same root, same port: what an operator or a supervisor does.
    registry.start()
    with fresh_client(registry) as c:
        for p in completed:
            r = c.get(f"/v2/{p.repo}/manifests/{p.tag}", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200, (p, r.text)
            assert r.headers["Docker-Content-Digest"] == p.manifest
            assert sha256(r.content) == p.manifest
            for digest in p.blobs:
                b = c.get(f"/v2/{p.repo}/blobs/{digest}")
                assert b.status_code == 200, (p, digest)
                assert sha256(b.content) == digest

        # Leftovers of interrupted sessions do not get in the way of new pushes.
        config, layer = b'{"after":"restart"}', os.urandom(4096)
        for blob in (config, layer):
            assert push_blob(c, "crash/repo0", blob).status_code == 201
        digest, _ = push_manifest(c, "crash/repo0", "after-restart", config, [layer])
        r = c.head("/v2/crash/repo0/manifests/after-restart")
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == digest
    assert_store_sound(registry.root)
