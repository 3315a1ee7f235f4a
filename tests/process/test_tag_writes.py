"""Tag writes to one repository from many clients at once, coalesced into few index.json
writes (registry/writer.py): none is lost, also when the whole instance is killed mid-way,
and the index stays one that zot and `skopeo oci:` read."""

from __future__ import annotations

import json
import threading

import httpx

from tests.process.conftest import StartRegistry
from tests.process.helpers import OCI_MANIFEST, fresh_client
from tests.support.oci import push_image, push_manifest
from tests.support.server import wait_until

WRITERS = 8
REPO = "tags/many"


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
