"""zot's Redis Cluster URL (go-redis's `ParseClusterURL`): `redis://host:port?addr=host:port`
names the cluster's nodes, the URL's host and each `addr`. A registry starts on a real
one-node Redis Cluster given so, and keeps its metadata there."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.backends import Redis
from tests.support.oci import push_image, unique_repo
from tests.support.server import RegistryProcess, base_config, wait_until


def test_a_cluster_url_with_addr_starts_and_serves(tmp_path: Path) -> None:
    node = Redis(tmp_path, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
    node.start()
    proc: RegistryProcess | None = None
    try:
        assert node.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383").startswith(b"+OK")
        wait_until(lambda: b"cluster_state:ok" in node.command("CLUSTER", "INFO"), timeout=20)
        cfg = base_config(tmp_path / "root", workers=1)
        cfg["storage"]["remoteCache"] = True
        cfg["storage"]["cacheDriver"] = {
            "name": "redis",
            "url": f"redis://127.0.0.1:{node.port}?addr=127.0.0.1:{node.port}",
            "keyprefix": "clustered",
        }
        proc = RegistryProcess(tmp_path, cfg).start()
        with httpx.Client(base_url=proc.url, timeout=60) as client:
            image = push_image(client, unique_repo("cl"), "v1")
            listed = client.get("/v2/_catalog")
            assert listed.status_code == 200 and image.repo in listed.json()["repositories"]
        assert b"clustered:ocireg" in node.command("KEYS", "clustered:ocireg*")
    finally:
        if proc is not None:
            proc.stop()
        node.stop()
