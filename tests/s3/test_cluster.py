"""Three cluster members on one SeaweedFS bucket and one Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import s3_cluster_configs
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import repo_owned_by, running_members
from tests.support.oci import blob_path, manifest_path, push_image, random_bytes, sha256_digest
from tests.support.server import RegistryProcess, run_cli

MiB = 1 << 20


@pytest.fixture
def members(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[list[RegistryProcess]]:
    with running_members(tmp_path, s3_cluster_configs(tmp_path, seaweedfs, redis_server)) as procs:
        yield procs


def test_push_through_one_member_pull_through_the_others(members: list[RegistryProcess]) -> None:
    repo = repo_owned_by(1, prefix="s3cluster")
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        image = push_image(client, repo, "v1", layer_size=6 * MiB)
    for member in members[1:]:
        with httpx.Client(base_url=member.url, timeout=60) as client:
            r = client.get(manifest_path(repo, "v1"), headers={"Accept": image.media_type})
            assert r.status_code == 200 and r.content == image.manifest
            layer = client.get(blob_path(repo, sha256_digest(image.layers[0])))
            assert layer.content == image.layers[0]


def test_owner_restarted_in_the_middle_of_a_chunked_upload(
    members: list[RegistryProcess], redis_server: Redis
) -> None:
    repo = repo_owned_by(1, prefix="s3restart")
    data = random_bytes(7 * MiB + 5)
    with httpx.Client(base_url=members[2].url, timeout=60) as client:
        r = client.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        location = r.headers["location"]
        r = client.patch(
            location, content=data[: 6 * MiB], headers={"Content-Range": f"0-{6 * MiB - 1}"}
        )
        assert r.status_code == 202, r.text
        location = r.headers["location"]
    members[1].stop()  # the owner: its processes, and anything they held in memory, are gone
    members[1].start()
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        r = client.patch(
            location,
            content=data[6 * MiB :],
            headers={"Content-Range": f"{6 * MiB}-{len(data) - 1}"},
        )
        assert r.status_code == 202, r.text
        r = client.put(r.headers["location"], params={"digest": sha256_digest(data)})
        assert r.status_code == 201, r.text
    for member in members:
        with httpx.Client(base_url=member.url, timeout=60) as client:
            assert client.get(blob_path(repo, sha256_digest(data))).content == data


def test_redis_flushed_then_rebuild_meta_then_every_image_pulls_through_every_member(
    members: list[RegistryProcess], redis_server: Redis
) -> None:
    repos = [repo_owned_by(i, prefix="s3flush") for i in range(3)]
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        images = [push_image(client, repo, "v1") for repo in repos]
    redis_server.command("FLUSHALL")
    done = run_cli("rebuild-meta", str(members[2].config_path))
    assert done.returncode == 0, done.stderr
    for member in members:
        with httpx.Client(base_url=member.url, timeout=60) as client:
            for image in images:
                r = client.get(
                    manifest_path(image.repo, "v1"), headers={"Accept": image.media_type}
                )
                assert r.status_code == 200 and r.content == image.manifest
                assert (
                    client.get(blob_path(image.repo, sha256_digest(image.config))).content
                    == image.config
                )
