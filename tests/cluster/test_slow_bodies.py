"""A body that stalls on its way through a member to the repository's owner: the client gets
408 REQUEST_TIMEOUT from the member it talks to (not a 503 blaming the owner), and the owner
lets go of the session, which stays usable."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import OCI_MANIFEST, manifest_path, random_bytes, sha256_digest
from tests.support.rawhttp import assert_idle_timeout, send_stalled
from tests.support.server import RegistryProcess

IDLE = 1.0


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryProcess]]:
    """Two members with roots of their own: every request for the other's repository hops."""
    workdir = tmp_path_factory.mktemp("slow-cluster")
    configs = cluster_configs(workdir, count=2, shared_root=False)
    for config in configs:
        config["http"]["bodyIdleTimeout"] = f"{IDLE:g}s"
    with running_members(workdir, configs) as procs:
        yield procs


def test_stalled_patch_through_a_member_is_408_and_the_session_survives(
    members: list[RegistryProcess],
) -> None:
    entry = members[0]
    repo = repo_owned_by(1, count=2)
    data = random_bytes(64)
    with httpx.Client(base_url=entry.url, timeout=30) as c:
        location = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
        response, waited = send_stalled(entry.port, "PATCH", location, data[:3], len(data))
        assert_idle_timeout(response, waited, IDLE)
        r = c.get(location)
        assert r.status_code == 204, r.text
        held = 0 if r.headers["range"] == "0-0" else int(r.headers["range"].split("-")[1]) + 1
        r = c.patch(location, content=data[held:])
        assert r.status_code == 202, r.text
        r = c.put(r.headers["location"], params={"digest": sha256_digest(data)})
        assert r.status_code == 201, r.text
    assert "member unreachable" not in entry.logs()


def test_stalled_manifest_put_through_a_member_is_408(members: list[RegistryProcess]) -> None:
    entry = members[0]
    target = manifest_path(repo_owned_by(1, count=2), "v1")
    response, waited = send_stalled(entry.port, "PUT", target, b"{", 100)
    assert_idle_timeout(response, waited, IDLE)
    with httpx.Client(base_url=entry.url, timeout=30) as c:
        assert c.get(target, headers={"Accept": OCI_MANIFEST}).status_code == 404
    assert "member unreachable" not in entry.logs()
