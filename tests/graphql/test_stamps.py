"""zot's push and tag times in the search API (`ImageSummary.PushTimestamp`, `PushedBy`,
`TaggedTimestamp`, and `RepoSummary.LastUpdated`), from pushes through a real server by two
htpasswd users and an anonymous caller, with the search index in sqlite and in Redis.

As zot keeps them: a manifest's first push to a repository and its first named pusher stay
(a push of it again, under another tag or by someone else, changes neither); a tag keeps the
time it was created while it is moved to another image; a manifest deleted and pushed again
is pushed first again; a tag whose creation is not known (a record of an older ocireg, a
rebuilt index) shows its image's push time; `ocireg rebuild-meta` takes a manifest's push
time from its file, with no pusher.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.auth.conftest import PASSWORDS, basic, write_htpasswd
from tests.graphql.conftest import SEARCH_ON, gql
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import Image, encode_json, manifest_path, push_image, push_manifest
from tests.support.server import RegistryProcess, base_config, run_cli, running_registry

CREATED = "2024-03-01T10:00:00Z"  # every image's config: older than any push
FIELDS = "RepoName Tag Digest PushTimestamp PushedBy TaggedTimestamp LastUpdated"
IMAGE = '{ Image(image: "%s:%s") { ' + FIELDS + " } }"
IMAGE_LIST = '{ ImageList(repo: "%s") { Results { ' + FIELDS + " } } }"
REPO_INFO = (
    '{ ExpandedRepoInfo(repo: "%s") { Images { ' + FIELDS + " }"
    " Summary { Name LastUpdated NewestImage { Tag } } } }"
)
OLD_FILE_TIME = 1_600_000_000.25  # 2020-09-13T12:26:40.25Z


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    """htpasswd users who may push, anonymous callers too; the metadata in sqlite (the
    default) or in Redis."""
    workdir = tmp_path_factory.mktemp(f"graphql-stamps-{request.param}")
    cfg = base_config(workdir / "root", workers=1, extensions=SEARCH_ON)
    cfg["http"]["auth"] = {
        "htpasswd": {"path": str(write_htpasswd(workdir / "users.htpasswd", PASSWORDS))}
    }
    policy = ["read", "create", "update", "delete"]
    cfg["http"]["accessControl"] = {
        "repositories": {"**": {"anonymousPolicy": policy, "defaultPolicy": policy}}
    }
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        cfg["storage"]["remoteCache"] = True
        cfg["storage"]["cacheDriver"] = {
            "name": "redis",
            "url": server.url,
            "keyprefix": uuid.uuid4().hex[:8],
        }
    with running_registry(workdir, cfg, name=f"graphql-stamps-{request.param}") as proc:
        yield proc


@pytest.fixture(scope="module")
def clients(registry: RegistryProcess) -> Iterator[dict[str, httpx.Client]]:
    """A client per caller: alice, bob and anonymous ("")."""
    made = {
        user: httpx.Client(base_url=registry.url, timeout=30.0, auth=basic(user) if user else None)
        for user in ("alice", "bob", "")
    }
    yield made
    for client in made.values():
        client.close()


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _image(client: httpx.Client, repo: str, tag: str) -> dict[str, Any]:
    answer = gql(client, IMAGE % (repo, tag))
    assert "errors" not in answer, answer
    found: dict[str, Any] = answer["data"]["Image"]
    return found


def _timed(push: Callable[[], Image]) -> tuple[Image, float, float]:
    """The pushed image and the time window of its push (the clock is the server's too)."""
    before = time.time()
    image = push()
    return image, before, time.time()


def _within(text: str, before: float, after: float) -> bool:
    return before - 0.001 <= _time(text) <= after + 0.001


def _push(client: httpx.Client, repo: str, tag: str) -> Image:
    return push_image(client, repo, tag, config=_config())


def _config() -> bytes:
    return encode_json(
        {"created": CREATED, "architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}
    )


def _repush(client: httpx.Client, image: Image, tag: str) -> Image:
    r = push_manifest(client, image.repo, tag, image.manifest, image.media_type)
    assert r.status_code == 201, r.text
    return image


def test_the_first_push_its_pusher_and_the_first_tagging_stay(
    clients: dict[str, httpx.Client],
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    repo = "stamps/app"
    first, start, end = _timed(lambda: _push(alice, repo, "v1"))
    v1 = _image(alice, repo, "v1")
    assert (v1["Digest"], v1["PushedBy"]) == (first.digest, "alice")
    assert _within(v1["PushTimestamp"], start, end), (v1, start, end)
    assert v1["TaggedTimestamp"] == v1["PushTimestamp"]  # tagged by that push

    # bob pushes the same manifest again, and under a new tag: its push stays alice's
    _repush(bob, first, "v1")
    assert _image(bob, repo, "v1") == v1
    _, start, end = _timed(lambda: _repush(bob, first, "v2"))
    v2 = _image(bob, repo, "v2")
    assert (v2["PushTimestamp"], v2["PushedBy"]) == (v1["PushTimestamp"], "alice")
    assert _within(v2["TaggedTimestamp"], start, end), (v2, start, end)

    # bob moves v1 to an image of his: its push is his, the tag's creation stays
    second, start, end = _timed(lambda: _push(bob, repo, "v1"))
    moved = _image(alice, repo, "v1")
    assert (moved["Digest"], moved["PushedBy"]) == (second.digest, "bob")
    assert _within(moved["PushTimestamp"], start, end), (moved, start, end)
    assert moved["TaggedTimestamp"] == v1["TaggedTimestamp"]

    # every list answers the same
    listed = gql(alice, IMAGE_LIST % repo)["data"]["ImageList"]["Results"]
    assert sorted(listed, key=lambda i: i["Tag"]) == [moved, v2]
    info = gql(alice, REPO_INFO % repo)["data"]["ExpandedRepoInfo"]
    assert sorted(info["Images"], key=lambda i: i["Tag"]) == [moved, v2]
    # the repository was last updated when v2 was created (its images' own times are older)
    assert moved["LastUpdated"] == v2["LastUpdated"] == CREATED
    assert info["Summary"]["LastUpdated"] == v2["TaggedTimestamp"]


def test_an_anonymous_first_push_takes_the_next_pusher_s_name(
    clients: dict[str, httpx.Client],
) -> None:
    repo = "stamps/anon"
    image = _push(clients[""], repo, "anon")
    anon = _image(clients[""], repo, "anon")
    assert anon["PushedBy"] == ""
    assert _time(anon["PushTimestamp"]) > 0
    _repush(clients["alice"], image, "named")
    _repush(clients["bob"], image, "later")
    for tag in ("anon", "named", "later"):
        found = _image(clients[""], repo, tag)
        assert (found["PushTimestamp"], found["PushedBy"]) == (anon["PushTimestamp"], "alice")


def test_a_manifest_deleted_and_pushed_again_is_pushed_first_again(
    clients: dict[str, httpx.Client],
) -> None:
    repo = "stamps/again"
    image = _push(clients["alice"], repo, "one")
    before = _image(clients["alice"], repo, "one")
    r = clients["alice"].delete(manifest_path(repo, image.digest))
    assert r.status_code == 202, r.text
    _, start, end = _timed(lambda: _repush(clients["bob"], image, "one"))
    after = _image(clients["bob"], repo, "one")
    assert after["PushedBy"] == "bob"
    assert _within(after["PushTimestamp"], start, end), (before, after)
    assert _within(after["TaggedTimestamp"], start, end)  # a new tag: the old one was deleted


def test_records_of_an_older_ocireg_show_their_push_time(
    registry: RegistryProcess, clients: dict[str, httpx.Client]
) -> None:
    """An older ocireg wrote the records without push and tag times: an image then shows
    the time its record was written as both, and no pusher."""
    repo = "stamps/older"
    _, start, end = _timed(lambda: _push(clients["alice"], repo, "old"))
    _forget_stamps(registry, repo)
    old = _image(clients["alice"], repo, "old")
    assert old["PushedBy"] == ""
    assert _within(old["PushTimestamp"], start, end), (old, start, end)
    assert old["TaggedTimestamp"] == old["PushTimestamp"]


def _forget_stamps(registry: RegistryProcess, repo: str) -> None:
    storage = registry.config["storage"]
    if storage.get("cacheDriver", {}).get("name") == "redis":
        driver = storage["cacheDriver"]
        with redis.Redis.from_url(driver["url"]) as client:
            client.delete(f"{{{driver['keyprefix']}:ocireg-search}}:stamps:{repo}")
        return
    db = sqlite3.connect(registry.root / ".ocireg" / "meta.db")
    with db:
        db.execute("DELETE FROM search_pushes WHERE repo = ?", (repo,))
        db.execute("DELETE FROM search_tagged WHERE repo = ?", (repo,))
    db.close()


def test_a_rebuild_takes_the_push_time_from_the_manifest_file(
    registry: RegistryProcess, clients: dict[str, httpx.Client]
) -> None:
    """Last in the module: the rebuild forgets every pusher and tag time."""
    repo = "stamps/rebuilt"
    image = _push(clients["alice"], repo, "v1")
    path = registry.root / repo / "blobs" / image.digest.replace(":", os.sep)
    os.utime(path, (OLD_FILE_TIME, OLD_FILE_TIME))
    done = run_cli("rebuild-meta", str(registry.config_path))
    assert done.returncode == 0, done.stderr
    rebuilt = _image(clients["alice"], repo, "v1")
    assert rebuilt["PushTimestamp"] == "2020-09-13T12:26:40.25Z"
    assert (rebuilt["PushedBy"], rebuilt["TaggedTimestamp"]) == ("", rebuilt["PushTimestamp"])
    _repush(clients["bob"], image, "v2")  # a pusher known from now on, the push time kept
    again = _image(clients["alice"], repo, "v1")
    assert (again["PushTimestamp"], again["PushedBy"]) == (rebuilt["PushTimestamp"], "bob")


def test_a_forwarded_push_is_noted_on_the_owner_with_its_pusher(tmp_path: Path) -> None:
    """With separate storage per member, a push that a member forwards is written, and its
    push noted, by the repository's owner, naming the user the hop carries."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", PASSWORDS)
    configs = cluster_configs(tmp_path, count=2, shared_root=False, extensions=SEARCH_ON)
    for config in configs:
        config["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    with running_members(tmp_path, configs) as members:
        repo = repo_owned_by(1, count=2, prefix="stamps")
        with httpx.Client(base_url=members[0].url, auth=basic("alice"), timeout=30.0) as c:
            _, start, end = _timed(lambda: _push(c, repo, "v1"))
        with httpx.Client(base_url=members[1].url, auth=basic("bob"), timeout=30.0) as c:
            found = _image(c, repo, "v1")
    assert found["PushedBy"] == "alice"
    assert _within(found["PushTimestamp"], start, end), (found, start, end)
