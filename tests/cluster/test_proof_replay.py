"""Issue 11, finding 8: a hop proof is accepted once per member, not once per worker process.

Two members with two workers each, htpasswd and access control: a proof signed for alice (as
member 1 would sign a request it forwards) lets her list tags of a repository member 0 owns;
replayed to member 0 on fresh connections, which the kernel hands to either of its workers, it
is refused everywhere, and the request is then an anonymous client's (401)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from ocireg.cluster.proof import HOP_HEADER, IDENTITY_HEADER, PROOF_HEADER, derive_key, sign
from ocireg.identity import Identity
from tests.auth.conftest import PASSWORDS, write_htpasswd
from tests.support.cluster import HASH_KEY, cluster_configs, repo_owned_by, running_members
from tests.support.server import RegistryProcess, wait_until

PATH = f"/v2/{repo_owned_by(0, count=2, prefix='alice')}/tags/list"


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("replay")
    htpasswd = str(write_htpasswd(workdir / "htpasswd", PASSWORDS))
    configs = cluster_configs(workdir, count=2, workers=2)
    for config in configs:
        config["http"]["auth"] = {"htpasswd": {"path": htpasswd}}
        config["http"]["accessControl"] = {
            "repositories": {"alice/**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}}
        }
    with running_members(workdir, configs) as members:
        yield members[0]


def served_by(member: RegistryProcess, request_id: str) -> int:
    """The pid of the worker that answered `request_id` (its access-log line is written just
    after the response, so it may take a moment)."""

    def find() -> int | None:
        for line in member.log_path.read_text().splitlines():
            if request_id in line and '"ocireg.access"' in line:
                return int(json.loads(line)["pid"])
        return None

    pid: int = wait_until(find, timeout=10)
    return pid


def test_a_replayed_proof_is_refused_by_every_worker(member: RegistryProcess) -> None:
    local = member.config["cluster"]["members"][0]
    hop = sign(derive_key(HASH_KEY.encode()), "GET", PATH, b"", local, Identity(user="alice"))
    headers = {
        HOP_HEADER.decode(): "1",
        PROOF_HEADER.decode(): hop.proof.decode(),
        IDENTITY_HEADER.decode(): hop.identity.decode(),
    }
    statuses: dict[int, list[int]] = {}  # worker pid -> statuses it answered, in order
    for i in range(60):  # until both workers have answered the replay; bounded
        request_id = f"replay-{i}"
        # A new client is a new connection: either worker may accept it.
        with httpx.Client(base_url=member.url, timeout=10) as c:
            r = c.get(PATH, headers={**headers, "X-Request-Id": request_id})
        statuses.setdefault(served_by(member, request_id), []).append(r.status_code)
        if len(statuses) == 2 and sum(map(len, statuses.values())) >= 4:
            break
    assert len(statuses) == 2, f"one worker answered everything: {statuses}"
    answers = [s for per_worker in statuses.values() for s in per_worker]
    # Accepted once (alice may read: the repository is unknown, 404); refused ever after.
    assert answers[0] == 404, statuses
    assert answers.count(401) == len(answers) - 1, statuses
