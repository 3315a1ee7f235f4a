"""Tag and manifest reads from the metadata store on S3 + Redis (registry/versions.py):
three cluster members with two workers each on one SeaweedFS bucket and one Redis. Reads
after writes through every member, deleted tags, a flushed Redis, a writer that does not
keep the keys, and the proof that the fast path sends nothing to S3."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import s3_cluster_configs
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import repo_owned_by, running_members
from tests.support.oci import assert_error, manifest_path, push_artifact, push_image
from tests.support.reads import (
    METRICS,
    digest_through,
    fast_paths,
    move_tag_outside,
    retag,
    sent_during,
    storage_requests,
    wait_fast,
)
from tests.support.server import RegistryProcess, run_cli


@pytest.fixture(scope="module")
def members(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[list[RegistryProcess]]:
    tmp = tmp_path_factory.mktemp("versions")
    configs = s3_cluster_configs(tmp, seaweedfs, redis_server, workers=2, extensions=METRICS)
    with running_members(tmp, configs) as procs:
        yield procs


def key_of(members: list[RegistryProcess], repo: str) -> str:
    prefix = members[0].config["storage"]["cacheDriver"]["keyprefix"]
    return f"{prefix}:ocireg:index-version:{repo}"


def test_read_after_write_through_every_member(members: list[RegistryProcess]) -> None:
    repo = repo_owned_by(1, prefix="versions")
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        images = [push_image(client, repo, f"i{n}") for n in range(3)]
    retag(members[0], images[0], "latest")
    wait_fast(members, [manifest_path(repo, "latest")])
    for n in range(12):  # each member writes four times, and reads after every write
        image = images[(n + 1) % 3]
        retag(members[n % 3], image, "latest")  # through the owner and through the others
        for reader in members:
            assert digest_through(reader, repo, "latest") == image.digest, (n, reader.name)
            assert digest_through(reader, repo, "latest", "HEAD") == image.digest
    # The rounds ran with the fast path on: reads need nothing from S3 still.
    assert all(sent_during(m, [manifest_path(repo, "latest")] * 10) == {} for m in members)


def test_fast_reads_send_nothing_to_storage(members: list[RegistryProcess]) -> None:
    """Manifest GET/HEAD by tag and by digest, tags list and referrers: 0 S3 requests."""
    repo = repo_owned_by(2, prefix="versions")
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        image = push_image(client, repo, "v1")
        sig = push_artifact(client, repo, image, "application/vnd.example.sig")
    reads = fast_paths(repo, image, "v1")
    wait_fast(members, reads)
    for member in members:
        assert sent_during(member, reads * 25) == {}
        r = httpx.get(f"{member.url}/v2/{repo}/referrers/{image.digest}")
        assert [d["digest"] for d in r.json()["manifests"]] == [sig.digest]
    # The counter does count: a read the fast path cannot answer (an unknown repository)
    # goes to S3.
    missing = repo_owned_by(2, prefix="versions")
    before = storage_requests(members[1])
    r = httpx.get(f"{members[1].url}{manifest_path(missing, 'v1')}")
    assert_error(r, 404, "MANIFEST_UNKNOWN")
    assert sum(storage_requests(members[1]).values()) > sum(before.values())


def test_deleted_tag_is_unknown_on_every_member(members: list[RegistryProcess]) -> None:
    repo = repo_owned_by(0, prefix="versions")
    with httpx.Client(base_url=members[1].url, timeout=60) as client:
        image = push_image(client, repo, "keep")
    retag(members[1], image, "gone")
    wait_fast(members, [manifest_path(repo, "gone")])
    r = httpx.delete(f"{members[2].url}{manifest_path(repo, 'gone')}")
    assert r.status_code == 202, r.text
    for member in members:
        assert_error(
            httpx.get(f"{member.url}{manifest_path(repo, 'gone')}"), 404, "MANIFEST_UNKNOWN"
        )
        assert digest_through(member, repo, "keep") == image.digest
        tags = httpx.get(f"{member.url}/v2/{repo}/tags/list").json()["tags"]
        assert tags == ["keep"]


def test_writer_outside_the_protocol_is_seen_once_the_key_expires(
    members: list[RegistryProcess], redis_server: Redis, seaweedfs: SeaweedFS
) -> None:
    """A zot (or an older ocireg) writing index.json straight into the bucket does not touch
    the key: readers may serve the previous index until the key expires (VERSION_TTL), then
    read storage. Expiry is what a DEL does at once."""
    from ocireg.registry.versions import VERSION_TTL

    repo = repo_owned_by(1, prefix="versions")
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        first = push_image(client, repo, "t")
        second = push_image(client, repo, "other")
    wait_fast(members, [manifest_path(repo, "t")])
    move_tag_outside(seaweedfs, members[0].config, repo, "t", second.digest, "old")
    ttl = int(redis_server.command("TTL", key_of(members, repo)).strip().lstrip(b":"))
    assert 0 < ttl <= VERSION_TTL
    redis_server.command("DEL", key_of(members, repo))
    for member in members:
        assert digest_through(member, repo, "t") == second.digest
        assert digest_through(member, repo, "old") == first.digest


def test_redis_flushed_then_everything_pulls_and_moves(
    members: list[RegistryProcess], redis_server: Redis
) -> None:
    repo = repo_owned_by(2, prefix="versions")
    with httpx.Client(base_url=members[0].url, timeout=60) as client:
        images = [push_image(client, repo, f"v{n}") for n in range(3)]
    retag(members[0], images[0], "latest")
    wait_fast(members, [manifest_path(repo, "latest")])
    redis_server.command("FLUSHALL")
    for member in members:
        for n, image in enumerate(images):
            assert digest_through(member, repo, f"v{n}") == image.digest
        assert digest_through(member, repo, "latest") == images[0].digest
    # A tag moved right after the flush is read right through every member.
    retag(members[1], images[2], "latest")
    for member in members:
        assert digest_through(member, repo, "latest") == images[2].digest
    done = run_cli("rebuild-meta", str(members[0].config_path))
    assert done.returncode == 0, done.stderr
    retag(members[2], images[1], "latest")
    for member in members:
        assert digest_through(member, repo, "latest") == images[1].digest
        for image in images:
            assert digest_through(member, repo, image.digest) == image.digest
    wait_fast(members, [manifest_path(repo, "latest")])  # and the keys are healed again
