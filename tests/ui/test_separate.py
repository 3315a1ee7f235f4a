"""The pages and search of a three-member cluster whose members store separately (zot's
model: each member its own root directory and its own embedded metadata store). Every
member shows the whole registry: the repositories list and search ask the other members
for their parts, a repository's pages and deletes go to the member that stores it, and a
member that does not answer is named on the page while the others' repositories are still
shown. Plain HTTP with the session cookie (the browser flows are in test_pages.py and
test_cluster.py)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.auth.conftest import write_htpasswd
from tests.support.cluster import cluster_configs, owner_of, repo_owned_by, running_members
from tests.support.oci import Image, manifest_path, push_image
from tests.support.server import RegistryProcess
from tests.ui.conftest import UI

pytestmark = pytest.mark.slow
ALL = ["read", "create", "update", "delete"]
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
ACCESS = {
    "repositories": {
        "pub/**": {"policies": [{"users": ["alice", "bob"], "actions": ALL}]},
        "team/**": {"policies": [{"users": ["alice"], "actions": ALL}]},
    }
}
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryProcess]]:
    workdir: Path = tmp_path_factory.mktemp("ui-separate")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    configs = cluster_configs(workdir, count=3, shared_root=False, extensions=UI)
    for cfg in configs:
        cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
        cfg["http"]["accessControl"] = ACCESS
    with running_members(workdir, configs) as procs:
        yield procs


@pytest.fixture(scope="module")
def pushed(members: list[RegistryProcess]) -> dict[str, Image]:
    """One pub/ repository stored on each member and a team/ one on member 1, all pushed
    through member 0 (the API sends each to its owner)."""
    run = uuid.uuid4().hex[:6]
    names = [repo_owned_by(i, prefix=f"pub/s{run}") for i in range(3)]
    names.append(repo_owned_by(1, prefix=f"team/s{run}"))
    images = {}
    with httpx.Client(base_url=members[0].url, auth=("alice", "alice-pw"), timeout=TIMEOUT) as c:
        for name in names:
            images[name] = push_image(c, name, "v1")
            push_image(c, name, "v2")
    return images


@contextlib.contextmanager
def session(member: RegistryProcess, user: str) -> Iterator[httpx.Client]:
    """A client logged in to the pages of `member` (its session cookie)."""
    with httpx.Client(base_url=member.url, timeout=TIMEOUT) as client:
        answer = client.post(
            "/ui/login", data={"username": user, "password": PASSWORDS[user], "next": "/"}
        )
        assert answer.status_code == 303, answer.text
        yield client


def listed(html: str) -> list[str]:
    """The repository names a page links to, in page order."""
    return [unescape(n) for n in re.findall(r'href="/ui/repo/([^"?]+)"', html)]


def owned(pushed: dict[str, Image], prefix: str) -> list[str]:
    return sorted(name for name in pushed if name.startswith(prefix))


def test_every_member_lists_and_searches_the_whole_registry(
    members: list[RegistryProcess], pushed: dict[str, Image]
) -> None:
    run = next(iter(pushed)).split("/")[1][:7]  # "s" + the run's id
    everything = sorted(pushed)
    assert {owner_of(name) for name in everything} == {0, 1, 2}
    for member in members:
        with session(member, "alice") as alice:
            page = alice.get("/", params={"q": run})
            assert page.status_code == 200
            assert sorted(set(listed(page.text))) == everything
            assert 'id="unanswered"' not in page.text
            found = alice.get("/ui/search", params={"q": run})
            assert sorted(set(listed(found.text))) == everything

    # pages of one name each: every repository once, in name order, across the members
    with session(members[2], "alice") as alice:
        seen: list[str] = []
        url: str | None = "/?" + f"q={run}&n=1"
        while url is not None:
            page = alice.get(url)
            names = sorted(set(listed(page.text)))
            assert len(names) == 1, page.text
            seen += names
            more = re.search(r'href="([^"]+)" rel="next"', page.text)
            url = unescape(more.group(1)) if more else None
            assert len(seen) <= len(everything)
        assert seen == everything

    # access control holds for every member's part: bob reads pub/ only
    with session(members[0], "bob") as bob:
        page = bob.get("/", params={"q": run})
        assert sorted(set(listed(page.text))) == owned(pushed, "pub/")
        found = bob.get("/ui/search", params={"q": "team/"})
        assert not [n for n in listed(found.text) if n.startswith("team/")]
        team = owned(pushed, "team/")[0]
        assert bob.get(f"/ui/repo/{team}").status_code == 404

    # the JSON search API gathers the same way
    with httpx.Client(base_url=members[1].url, auth=("bob", "bob-pw"), timeout=TIMEOUT) as c:
        for n in (1000, 50):  # the largest page too: a member asks the others for n + 1
            answer = c.get("/v2/_ocireg/search", params={"contains": run, "n": n})
            assert answer.status_code == 200
            assert answer.json() == {"repositories": answer.json()["repositories"]}
            assert [r["name"] for r in answer.json()["repositories"]] == owned(pushed, "pub/")
        far = next(n for n in owned(pushed, "pub/") if owner_of(n) != 1)
        one = c.get("/v2/_ocireg/search", params={"repository": far})
        assert one.status_code == 200
        assert sorted(i["tag"] for i in one.json()["images"]) == ["v1", "v2"]


def test_repository_pages_and_deletes_reach_the_member_that_stores_it(
    members: list[RegistryProcess], pushed: dict[str, Image]
) -> None:
    name = next(n for n in owned(pushed, "pub/") if owner_of(n) == 2)
    image = pushed[name]
    with session(members[0], "alice") as alice:
        repo_page = alice.get(f"/ui/repo/{name}")
        assert repo_page.status_code == 200
        assert ">v1<" in repo_page.text and ">v2<" in repo_page.text
        image_page = alice.get(f"/ui/image/{name}@{image.digest}")
        assert image_page.status_code == 200
        assert image.digest in image_page.text

        confirm = alice.get("/ui/delete", params={"repo": name, "reference": "v1"})
        assert confirm.status_code == 200
        action = unescape(
            re.search(r'<form method="post" action="(/ui/delete[^"]+)"', confirm.text)[1]
        )
        token = re.search(r'name="csrf" value="([^"]+)"', confirm.text)[1]
        deleted = alice.post(action, data={"csrf": token})
        assert deleted.status_code == 303, deleted.text
        assert deleted.headers["location"] == f"/ui/image/{quote(name)}@{image.digest}"

    with httpx.Client(base_url=members[2].url, auth=("alice", "alice-pw"), timeout=TIMEOUT) as c:
        assert c.get(manifest_path(name, "v1")).status_code == 404
        assert c.get(f"/v2/{name}/tags/list").json()["tags"] == ["v2"]


def test_a_member_that_does_not_answer_is_named(
    members: list[RegistryProcess], pushed: dict[str, Image]
) -> None:
    run = next(iter(pushed)).split("/")[1][:7]
    down = members[2]
    gone = [name for name in pushed if owner_of(name) == 2]
    down.stop()
    with session(members[0], "alice") as alice:
        page = alice.get("/", params={"q": run})
        assert page.status_code == 200
        assert 'id="unanswered"' in page.text
        assert down.url.removeprefix("http://") in page.text
        assert sorted(set(listed(page.text))) == sorted(set(pushed) - set(gone))
        # a repository of the member that is down: the pages' error, not the API's JSON
        missing = alice.get(f"/ui/repo/{gone[0]}")
        assert missing.status_code == 503
        assert missing.headers["content-type"].startswith("text/html")
        assert "Unavailable" in missing.text
    with httpx.Client(base_url=members[0].url, auth=("alice", "alice-pw"), timeout=TIMEOUT) as c:
        answer = c.get("/v2/_ocireg/search", params={"q": run}).json()
        assert answer["unanswered"] == [down.url.removeprefix("http://")]
