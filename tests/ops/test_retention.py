"""`storage.retention` (zot's policies) end to end: a served registry on the filesystem and on
SeaweedFS + Redis, tags pushed and pulled over HTTP, the server's pull log, and the real
`ocireg gc` command applying the policies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import backend_registry_config
from tests.ops.conftest import BACKENDS, run_gc
from tests.support.oci import push_image, push_manifest, sha256_digest, unique_repo
from tests.support.server import RegistryProcess, base_config, running_registry, wait_until

RETENTION: dict[str, Any] = {
    "delay": "1s",
    "policies": [
        {
            # the most pulled image stays, and every release
            "repositories": ["pulled/**"],
            "keepTags": [{"patterns": ["^release-"]}, {"mostRecentlyPulledCount": 1}],
        },
        {"repositories": ["dry/**"], "keepTags": [{"patterns": ["^v"]}]},
        {"repositories": ["repush/**"], "keepTags": [{"mostRecentlyPushedCount": 2}]},
        # everything else: no tag rules, untagged manifests after `delay`
        {"repositories": ["**"]},
    ],
}


@pytest.fixture(scope="module", params=BACKENDS)
def retained(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("retention")
    config = backend_registry_config(workdir, request.param, request)
    config["storage"].update(gcDelay="1s", gcInterval="0", retention=RETENTION)
    with running_registry(workdir, config) as proc:
        yield proc


@pytest.fixture
def client(retained: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=retained.url, timeout=30.0) as c:
        yield c


def tags(client: httpx.Client, repo: str) -> set[str]:
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    return set(r.json()["tags"] or [])


def test_the_most_pulled_tag_and_the_releases_stay_and_the_rest_goes(
    retained: RegistryProcess, client: httpx.Client
) -> None:
    repo = unique_repo("pulled")
    images = {tag: push_image(client, repo, tag) for tag in ("a", "b", "c", "release-1")}
    r = client.get(f"/v2/{repo}/manifests/b", headers={"Accept": "*/*"})
    assert r.status_code == 200
    assert client.head(f"/v2/{repo}/manifests/c").status_code == 200  # a HEAD is no pull

    # The pull reaches the store within the pull log's flush: until then "b" has no pull.
    def planned() -> list[str] | None:
        report = run_gc(retained.config_path, dry_run=True, repos=[repo])[repo]
        return report.get("tags") if report.get("tags") == ["a", "c"] else None

    assert wait_until(planned, timeout=30, interval=0.5) == ["a", "c"]
    report = run_gc(retained.config_path, repos=[repo])[repo]
    assert report["tags"] == ["a", "c"]
    assert tags(client, repo) == {"b", "release-1"}
    assert client.get(f"/v2/{repo}/manifests/a").status_code == 404
    for tag in ("b", "release-1"):
        got = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": "*/*"})
        assert sha256_digest(got.content) == images[tag].digest
        layer = images[tag].layers[0]
        blob = client.get(f"/v2/{repo}/blobs/{sha256_digest(layer)}")
        assert blob.content == layer

    # Past gcDelay the blobs only the removed tags' images named go; the others stay.
    dropped = {sha256_digest(images[t].layers[0]) for t in ("a", "c")}

    def collected() -> bool:
        run_gc(retained.config_path, repos=[repo])
        return all(client.get(f"/v2/{repo}/blobs/{d}").status_code == 404 for d in dropped)

    assert wait_until(collected, timeout=30, interval=0.5)
    assert client.get(f"/v2/{repo}/manifests/{images['b'].digest}").status_code == 200


def test_dry_run_reports_and_changes_nothing(
    retained: RegistryProcess, client: httpx.Client
) -> None:
    repo = unique_repo("dry")
    push_image(client, repo, "v1")
    push_image(client, repo, "dev")
    config = json.loads(json.dumps(retained.config))
    config["storage"]["retention"] = {**RETENTION, "dryRun": True}
    path = retained.workdir / f"{retained.name}-dry.json"
    path.write_text(json.dumps(config))
    report = run_gc(path, repos=[repo])[repo]
    assert (report["retentionDryRun"], report["dryRun"], report["tags"]) == (True, False, ["dev"])
    assert tags(client, repo) == {"v1", "dev"}


def test_a_manifest_pushed_again_counts_as_pushed_then(
    retained: RegistryProcess, client: httpx.Client
) -> None:
    """zot renews a manifest's push time on every push of it: M pushed as v1, N as v2, M
    again as v3 makes M the newest push, so the two most recent are v1 and v3 (both M). Its
    file still has the time it was first written; the push is noted by the metadata store."""
    repo = unique_repo("repush")
    first = push_image(client, repo, "v1")
    push_image(client, repo, "v2")
    assert push_manifest(client, repo, "v3", first.manifest).status_code == 201
    report = run_gc(retained.config_path, repos=[repo])[repo]
    assert report["tags"] == ["v2"]
    assert tags(client, repo) == {"v1", "v3"}


def test_without_tag_rules_tags_stay_whatever_their_age(
    retained: RegistryProcess, client: httpx.Client
) -> None:
    repo = unique_repo("other")
    push_image(client, repo, "x")
    push_image(client, repo)  # untagged: goes after `delay` (1s)
    wait_until(
        lambda: run_gc(retained.config_path, repos=[repo])[repo]["manifests"],
        timeout=30,
        interval=0.5,
    )
    assert tags(client, repo) == {"x"}


def test_pulls_noted_without_policies_and_just_before_a_stop_are_kept(tmp_path: Path) -> None:
    """A server without retention policies notes pulls too (rules added later see them),
    and a worker hands its last pulls to the store when it stops (SIGTERM), not only every
    few seconds."""
    config = base_config(tmp_path / "root")
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        push_image(c, "app", "pulled")
        push_image(c, "app", "newer")  # pushed last: kept instead if the pull were lost
        assert c.get("/v2/app/manifests/pulled", headers={"Accept": "*/*"}).status_code == 200
        proc.stop()
    policy = {"repositories": ["**"], "keepTags": [{"mostRecentlyPulledCount": 1}]}
    config["storage"]["retention"] = {"policies": [policy]}
    with_rules = tmp_path / "with-rules.json"
    with_rules.write_text(json.dumps(config))
    report = run_gc(with_rules, dry_run=True, repos=["app"])["app"]
    assert report["tags"] == ["newer"]


def test_gc_forgets_the_notes_of_deleted_manifests(tmp_path: Path) -> None:
    """Push and pull times and pull counts are kept per manifest in the metadata store.
    Once a client deleted a manifest, the next `ocireg gc` drops its notes (they would
    otherwise stay forever, and come back if the same manifest were pushed again), and
    keeps those of the manifests still listed."""
    config = base_config(tmp_path / "root")
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        gone, stays = push_image(c, "app", "gone"), push_image(c, "app", "stays")
        for image in (gone, stays):
            push_manifest(c, "app", image.digest, image.manifest)  # pushed again: noted
            r = c.get(f"/v2/app/manifests/{image.digest}", headers={"Accept": "*/*"})
            assert r.status_code == 200
        assert c.delete(f"/v2/app/manifests/{gone.digest}").status_code == 202
        proc.stop()  # the workers hand their pulls to the store

    def noted() -> dict[str, set[str]]:
        db = sqlite3.connect(tmp_path / "root" / ".ocireg" / "meta.db")
        try:
            return {
                table: {d for (d,) in db.execute(f"SELECT digest FROM {table} WHERE repo='app'")}
                for table in ("pulls", "pushes", "pull_counts")
            }
        finally:
            db.close()

    both = {gone.digest, stays.digest}
    assert noted() == {"pulls": both, "pushes": both, "pull_counts": both}
    run_gc(proc.config_path, repos=["app"])
    assert noted() == {
        "pulls": {stays.digest},
        "pushes": {stays.digest},
        "pull_counts": {stays.digest},
    }
