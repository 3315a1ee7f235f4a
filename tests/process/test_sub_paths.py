"""zot's `storage.subPaths` on a real server: repositories go to the root their first name
component picks, with their whole name; the catalog joins the roots (sorted, paged across
them); each sub path has its own dedupe and garbage-collection keys; a mount between two
roots copies; `rebuild-meta` finds every root's repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.oci import (
    assert_image_pulls,
    push_blob,
    push_image,
    random_bytes,
    sha256_digest,
)
from tests.support.server import base_config, run_cli, running_registry, wait_until

LAYOUT = {
    "team/app": "team",
    "team/x/y": "team",
    "ci/build": "ci",
    "team": "root",  # one component: always the default root
    "solo/app": "root",  # no sub path of that name
}


def configured(tmp_path: Path, **subs: dict[str, Any]) -> dict[str, Any]:
    config = base_config(tmp_path / "root")
    config["storage"]["subPaths"] = {
        f"/{route}": {"rootDirectory": str(tmp_path / route), **keys}
        for route, keys in subs.items()
    }
    return config


def blob_file(root: Path, repo: str, digest: str) -> Path:
    return root / repo / "blobs" / "sha256" / digest.split(":")[1]


def test_repositories_live_under_the_root_their_first_component_picks(tmp_path: Path) -> None:
    config = configured(tmp_path, team={}, ci={"dedupe": True})
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        images = {repo: push_image(c, repo, "v1") for repo in LAYOUT}
        for repo, root in LAYOUT.items():
            assert (tmp_path / root / repo / "index.json").is_file(), repo
            for other in {"team", "ci", "root"} - {root}:
                assert not (tmp_path / other / repo / "index.json").exists(), (repo, other)
            assert_image_pulls(c, images[repo], "v1")
        everything = sorted(LAYOUT)
        assert c.get("/v2/_catalog").json()["repositories"] == everything
        paged, url = [], "/v2/_catalog?n=2"
        while url:
            r = c.get(url)
            paged += r.json()["repositories"]
            url = r.links.get("next", {}).get("url", "")
        assert paged == everything
        assert c.delete(f"/v2/team/app/manifests/{images['team/app'].digest}").status_code == 202
        assert c.get("/v2/team/app/manifests/v1").status_code == 404

    # the catalog index rebuilt from storage walks every root
    assert run_cli("rebuild-meta", str(proc.config_path)).returncode == 0
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert c.get("/v2/_catalog").json()["repositories"] == everything


def test_dedupe_and_mounts_follow_each_root(tmp_path: Path) -> None:
    """`/ci` dedupes (hard links), `/team` does not (zot's default in a sub path), the
    default root does (zot's default there); a blob mounted from another root is copied."""
    config = configured(tmp_path, team={}, ci={"dedupe": True})
    layer = random_bytes(50_000)
    digest = sha256_digest(layer)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        # interleaved: each root keeps its own copy to link to (zot: a cache per root)
        for repo in ("ci/a", "solo", "ci/b", "team/a", "other", "team/b"):
            push_blob(c, repo, layer)

        def inode(root: str, repo: str) -> int:
            return blob_file(tmp_path / root, repo, digest).stat().st_ino

        assert inode("ci", "ci/a") == inode("ci", "ci/b")
        assert inode("team", "team/a") != inode("team", "team/b")
        assert inode("root", "solo") == inode("root", "other")
        r = c.post(f"/v2/team/c/blobs/uploads/?mount={digest}&from=ci/a")
        assert r.status_code == 201, r.text
        assert inode("team", "team/c") != inode("ci", "ci/a")
        assert c.get(f"/v2/team/c/blobs/{digest}").content == layer
        r = c.post(f"/v2/ci/c/blobs/uploads/?mount={digest}&from=ci/a")
        assert r.status_code == 201, r.text
        assert inode("ci", "ci/c") == inode("ci", "ci/a")


def test_each_root_is_collected_by_its_own_keys(tmp_path: Path) -> None:
    """The background GC collects each storage with gc on at its own gcInterval (`/team`
    every second, the default root every hour: not yet), and none with gc off (`/ci`, as a
    sub path without the key); `ocireg gc` takes each one's gcDelay."""
    config = configured(
        tmp_path, team={"gc": True, "gcDelay": "0s", "gcInterval": "1s"}, ci={"gcDelay": "1h"}
    )
    config["storage"].update(gc=True, gcDelay="0s", gcInterval="1h")
    orphans = {repo: random_bytes(1000) for repo in ("team/app", "ci/app", "solo/app")}
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        for repo, data in orphans.items():
            push_image(c, repo, "v1")
            push_blob(c, repo, data)
        roots = {"team/app": "team", "ci/app": "ci", "solo/app": "root"}

        def present(repo: str) -> bool:
            return blob_file(tmp_path / roots[repo], repo, sha256_digest(orphans[repo])).exists()

        wait_until(lambda: not present("team/app"), timeout=30)
        assert present("ci/app") and present("solo/app")  # gc off there; not due there

    result = run_cli("gc", str(proc.config_path))
    assert result.returncode == 0, result.stderr
    assert present("ci/app")  # its own gcDelay: 1h
    assert not present("solo/app")


def test_a_sub_path_added_or_removed_rebuilds_the_catalog_at_start(tmp_path: Path) -> None:
    """The catalog comes from the metadata store's index. A sub path added over
    repositories of the default root hides them (zot looks for them in the sub path's root),
    and removing it shows them again: the first start with other sub paths empties the
    store and rebuilds it from storage, so the catalog lists what is served, without
    `rebuild-meta`. A start with the same sub paths rebuilds nothing."""
    changed = "storage.subPaths changed"
    plain = base_config(tmp_path / "root")
    with running_registry(tmp_path, plain) as proc, httpx.Client(base_url=proc.url) as c:
        for repo in ("team/app", "solo"):
            push_image(c, repo, "v1")
        assert c.get("/v2/_catalog").json()["repositories"] == ["solo", "team/app"]
    with_team = configured(tmp_path, team={})
    both = ["solo", "team/app"]
    for config, served in ((with_team, ["solo"]), (with_team, ["solo"]), (plain, both)):
        with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
            assert c.get("/v2/_catalog").json()["repositories"] == served
            found = c.get("/v2/team/app/tags/list").status_code
            assert found == (200 if "team/app" in served else 404)
    rebuilt = proc.log_path.read_text().count(changed)
    assert rebuilt == 2, rebuilt  # the first start with /team, and the one without it again
