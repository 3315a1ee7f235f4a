"""In a three-member cluster on one root, the repository's owner does the syncing: a pull
through any member fetches the image once, on the owner, and every member serves it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cluster.test_shared_storage import wait_all_shared
from tests.ops.conftest import scrape, value
from tests.support.cluster import owner_of, repo_owned_by, running_cluster
from tests.support.oci import push_image
from tests.support.server import wait_until
from tests.sync.conftest import Upstream

MISSES = "ocireg_sync_on_demand_total"


def test_only_the_owner_fetches_on_demand_and_polls(upstream: Upstream, tmp_path: Path) -> None:
    pulled = repo_owned_by(2, prefix="pulled")
    polled = repo_owned_by(1, prefix="polled")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, pulled, "v1")
        mirrored = push_image(up, polled, "v1")
    sync = {
        "registries": [
            {"urls": [upstream.url], "onDemand": True},
            {"urls": [upstream.url], "pollInterval": "1h", "content": [{"prefix": "polled/**"}]},
        ]
    }
    extensions = {"sync": sync, "metrics": {"enable": True}}
    with running_cluster(tmp_path, extensions=extensions) as members:
        # On shared storage too: reads of a mirrored repository still go to the owner.
        wait_all_shared(members)
        for member in members:  # through each member in turn, the owner last
            r = httpx.get(f"{member.url}/v2/{pulled}/manifests/v1", timeout=30)
            assert r.status_code == 200 and r.content == image.manifest
        # Counted when the copy behind the first answer ends.
        wait_until(lambda: value(scrape(members[2].url), MISSES, result="miss") == 1)
        misses = [value(scrape(m.url), MISSES, result="miss") for m in members]
        assert misses == [0, 0, 1]
        # The periodic entry ran at start on every member; only member 1 owns `polled`.
        for member in members:
            wait_until(
                lambda m=member: httpx.get(f"{m.url}/v2/{polled}/tags/list").status_code == 200,
                timeout=30,
            )
        r = httpx.get(f"{members[0].url}/v2/{polled}/manifests/v1", timeout=30)
        assert r.content == mirrored.manifest
        periodic = [
            value(scrape(m.url), "ocireg_sync_images_total", mode="periodic") for m in members
        ]
        assert periodic == [0, 1, 0]
        assert owner_of(polled) == 1
