"""Maintenance and metrics in a cluster: each repository is collected by its owner alone;
forwarded requests and proxy errors are counted by member."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cluster.test_shared_storage import wait_all_shared
from tests.conftest import s3_cluster_configs
from tests.ops.conftest import BLOB, scrape, value
from tests.support.cluster import cluster_configs, repo_owned_by, running_members, start_members
from tests.support.oci import assert_error, push_blob, push_image, random_bytes, sha256_digest
from tests.support.server import RegistryProcess, run_cli, wait_until


def gc_lines(log: str) -> list[dict[str, object]]:
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("message") == "gc"]


def test_each_repository_is_collected_by_its_owner_alone(tmp_path: Path) -> None:
    configs = cluster_configs(tmp_path, count=3, workers=2)
    for cfg in configs:
        cfg["storage"].update(gcDelay="2s", gcInterval="1s")
    members = start_members(tmp_path, configs)
    try:
        repos = [repo_owned_by(i, prefix="ops/cluster") for i in range(3)]
        orphans = []
        with httpx.Client(base_url=members[0].url, timeout=30.0) as c:  # forwards to owners
            for repo in repos:
                push_image(c, repo, "v1")
                orphans.append(push_blob(c, repo, random_bytes(100)))
        root = members[0].root
        files = [
            root / r / "blobs" / "sha256" / o.split(":")[1]
            for r, o in zip(repos, orphans, strict=True)
        ]
        wait_until(lambda: not any(f.exists() for f in files), timeout=30)
        # The run logs its repository once it is done with it: wait for all three lines.
        wait_until(
            lambda: all(
                any(x["repository"] == repos[i] for x in gc_lines(m.log_path.read_text()))
                for i, m in enumerate(members)
            ),
            timeout=10,
        )
        logs = [m.log_path.read_text() for m in members]
    finally:
        for member in members:
            member.stop()
    for i, log in enumerate(logs):
        collected = {x["repository"] for x in gc_lines(log)}
        assert collected == {repos[i]}, f"member {i} collected {collected}"
        runs = [json.loads(x) for x in log.splitlines() if '"gc run"' in x]
        assert len({r["pid"] for r in runs}) == 1, f"member {i}: GC in several workers"


def test_gc_command_in_a_cluster_collects_only_this_members_repositories(
    tmp_path: Path,
) -> None:
    configs = cluster_configs(tmp_path, count=3, workers=1)
    members = start_members(tmp_path, configs)
    try:
        repos = [repo_owned_by(i, prefix="ops/cluster") for i in range(3)]
        with httpx.Client(base_url=members[2].url, timeout=30.0) as c:
            for repo in repos:
                push_image(c, repo, "v1")
        reports = run_cli("gc", str(members[1].config_path), "--dry-run")
    finally:
        for member in members:
            member.stop()
    assert reports.returncode == 0, reports.stderr
    seen = {json.loads(x)["repository"] for x in reports.stdout.splitlines() if x.strip()}
    assert seen == {repos[1]}


def test_forwarded_requests_and_proxy_errors_are_counted_by_member(tmp_path: Path) -> None:
    # Separate roots: every request for the owner's repository is forwarded (on shared
    # storage reads and uploads would be answered where they arrive).
    configs = cluster_configs(tmp_path, count=2, workers=2, shared_root=False)
    for cfg in configs:
        # Present and empty (YAML's bare `metrics:` is null): enabled, as in zot.
        cfg["extensions"] = {"metrics": None}
    members = start_members(tmp_path, configs)
    try:
        owner = configs[1]["cluster"]["members"][1]
        repo = repo_owned_by(1, count=2, prefix="ops/proxied")
        data = random_bytes(500)
        with httpx.Client(base_url=members[0].url, timeout=30.0) as c:
            digest = push_blob(c, repo, data)  # POST + PUT, both forwarded
            for _ in range(3):
                assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 200
            samples = scrape(members[0].url)
            assert value(samples, "ocireg_proxy_requests_total", member=owner) == 5
            assert value(samples, "ocireg_proxy_errors_total", member=owner) == 0
            # Counted where they arrived, under the route template, though no handler ran.
            total = "ocireg_http_requests_total"
            assert value(samples, total, method="HEAD", route=BLOB, status="200") == 3
            members[1].stop()
            r = c.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
            assert_error(r, 503, "UNAVAILABLE")
            samples = scrape(members[0].url)
            assert value(samples, "ocireg_proxy_requests_total", member=owner) == 6
            assert value(samples, "ocireg_proxy_errors_total", member=owner) == 1
    finally:
        for member in members:
            member.stop()


def collected(member: RegistryProcess, repo: str) -> bool:
    return any(x["repository"] == repo for x in gc_lines(member.log_path.read_text()))


def orphan_collected_by(via: RegistryProcess, collector: RegistryProcess, repo: str) -> None:
    """Push an unreferenced blob to `repo` through `via`; wait until it is gone and
    `collector`'s log names the repository."""
    with httpx.Client(base_url=via.url, timeout=30.0) as c:
        orphan = push_blob(c, repo, random_bytes(100))
    blob = via.root / repo / "blobs" / "sha256" / orphan.split(":")[1]
    wait_until(lambda: not blob.exists(), timeout=30)
    wait_until(lambda: collected(collector, repo), timeout=10)


def test_a_down_members_repositories_are_collected_by_the_first_live_member_then_handed_back(
    tmp_path: Path,
) -> None:
    """Shared root: member 2 is killed; member 0 (first in line) collects its repository
    until it returns, then member 2 does again, and member 0 no longer."""
    configs = cluster_configs(tmp_path, count=3, workers=1)
    for cfg in configs:
        cfg["storage"].update(gcDelay="1s", gcInterval="1s")
    members = start_members(tmp_path, configs)
    try:
        wait_all_shared(members)  # until then a member forwards as with separate storage
        repo = repo_owned_by(2, prefix="ops/takeover")
        with httpx.Client(base_url=members[0].url, timeout=30.0) as c:
            push_image(c, repo, "v1")
        members[2].kill()
        orphan_collected_by(members[0], members[0], repo)
        assert not collected(members[1], repo)
        members[2].start()
        orphan_collected_by(members[2], members[2], repo)
        handed_back = len(gc_lines(members[0].log_path.read_text()))
        # member 0 no longer collects it: several of its runs pass without the repository
        runs = members[0].log_path.read_text().count('"gc run"')
        wait_until(
            lambda: members[0].log_path.read_text().count('"gc run"') >= runs + 3, timeout=20
        )
        assert len(gc_lines(members[0].log_path.read_text())) == handed_back
    finally:
        for member in members:
            member.stop()


PULL_RULE = {"policies": [{"repositories": ["**"], "keepTags": [{"mostRecentlyPulledCount": 1}]}]}


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "sqlite-per-member"])
def test_retention_sees_pulls_another_member_served_or_keeps_what_pull_rules_cover(
    tmp_path: Path, request: pytest.FixtureRequest, redis: bool
) -> None:
    """On S3 every member serves reads. With Redis the owner's collection sees a pull another
    member served; with a sqlite file per member it cannot, and the rule keeps every tag."""
    configs = s3_cluster_configs(
        tmp_path, request.getfixturevalue("seaweedfs"), request.getfixturevalue("redis_server"), 2
    )
    for cfg in configs:
        cfg["storage"]["retention"] = PULL_RULE
        if not redis:
            del cfg["storage"]["cacheDriver"], cfg["storage"]["remoteCache"]
    repo = repo_owned_by(0, count=2, prefix="ops/retained")
    with running_members(tmp_path, configs) as members:
        with httpx.Client(base_url=members[0].url, timeout=30.0) as owner:
            push_image(owner, repo, "pulled")
            push_image(owner, repo, "newer")  # kept instead when the pull is not seen
        with httpx.Client(base_url=members[1].url, timeout=30.0) as other:
            got = other.get(f"/v2/{repo}/manifests/pulled", headers={"Accept": "*/*"})
            assert got.status_code == 200

        def planned() -> list[str] | None:
            reports = run_cli("gc", str(members[0].config_path), "--dry-run", "--repository", repo)
            assert reports.returncode == 0, reports.stderr
            report = json.loads(reports.stdout)
            return report.get("tags", []) if report.get("tags") != ["pulled"] else None

        if redis:
            assert wait_until(planned, timeout=30, interval=0.5) == ["newer"]
        else:
            assert planned() == []
