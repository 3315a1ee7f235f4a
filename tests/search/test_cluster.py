"""Search from any member: two members on one SeaweedFS bucket and one Redis; each answers
for the whole registry, repositories the other member owns included, without a hop."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import s3_cluster_configs
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import repo_owned_by, running_members
from tests.support.oci import push_image

SEARCH = "/v2/_ocireg/search"
TITLE = "org.opencontainers.image.title"


def test_a_member_finds_what_the_other_owns(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    configs = s3_cluster_configs(
        tmp_path, seaweedfs, redis_server, count=2, extensions={"search": {"enable": True}}
    )
    owned = [repo_owned_by(i, count=2, prefix="findme") for i in range(2)]
    with running_members(tmp_path, configs) as members:
        # each pushed through the member that does not own it (the tag write hops)
        for i, repo in enumerate(owned):
            with httpx.Client(base_url=members[1 - i].url, timeout=60) as client:
                push_image(client, repo, "v1", annotations={TITLE: f"Needle {i}"})
        for member in members:
            with httpx.Client(base_url=member.url, timeout=30) as client:
                r = client.get(SEARCH, params={"q": "needle"})
                assert r.status_code == 200, r.text
                assert [(i["repository"], i["title"]) for i in r.json()["images"]] == sorted(
                    (repo, f"Needle {i}") for i, repo in enumerate(owned)
                )
                r = client.get(SEARCH, params={"contains": "findme/"})
                assert r.status_code == 200, r.text
                names = [(repo["name"], repo["tags"]) for repo in r.json()["repositories"]]
                assert names == sorted((repo, 1) for repo in owned)
