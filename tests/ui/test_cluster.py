"""The pages through members of a three-member cluster on SeaweedFS (S3) + Redis: a member
that does not own a repository shows it (pages read the shared store, never forwarded), a
session made on one member is accepted by another (the key comes from the shared config),
anonymous users are sent to the login page when no anonymousPolicy allows them, and a delete
made on a member that is not the owner reaches the shared storage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.auth.conftest import write_htpasswd
from tests.conftest import use_backend
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, owner_of, repo_owned_by, running_members
from tests.support.oci import manifest_path, push_image
from tests.support.server import RegistryProcess
from tests.ui.conftest import UI, login, repo_names

pytestmark = pytest.mark.slow
ALL = ["read", "create", "update", "delete"]


@pytest.fixture(scope="module")
def members(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS, redis_server: Redis
) -> Iterator[list[RegistryProcess]]:
    workdir: Path = tmp_path_factory.mktemp("ui-cluster")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", {"alice": "alice-pw"})
    configs = cluster_configs(workdir, count=3, extensions=UI)
    root, prefix = f"/ui{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    for i, cfg in enumerate(configs):
        cfg["storage"]["rootDirectory"] = str(workdir / f"local-{i}")  # share no disk
        use_backend(cfg, seaweedfs, redis_server, root, prefix)
        cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
        cfg["http"]["accessControl"] = {"repositories": {"**": {"defaultPolicy": ALL}}}
    with running_members(workdir, configs) as procs:
        yield procs


def test_a_member_that_does_not_own_the_repository_shows_it(
    members: list[RegistryProcess], page: Any
) -> None:
    repo = repo_owned_by(0, prefix="ui")
    with httpx.Client(base_url=members[0].url, auth=("alice", "alice-pw"), timeout=30) as c:
        image = push_image(c, repo, "v1")
        push_image(c, repo, "v2")
    viewer = members[1]
    assert owner_of(repo) != 1

    # no anonymousPolicy: anonymous users are sent to log in, then back where they were
    page.goto(f"{viewer.url}/ui/repo/{repo}")
    assert page.url == f"{viewer.url}/ui/login?next=" + quote(f"/ui/repo/{repo}", safe="")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-pw")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{viewer.url}/ui/repo/{repo}")
    assert page.get_by_role("link", name="v1", exact=True).count() == 1

    page.goto(f"{viewer.url}/?q={repo}")
    assert repo_names(page) == [repo]

    # the same cookie (same host, another port) on member 2: accepted there too
    other = members[2]
    page.goto(f"{other.url}/?q={repo}")
    assert page.locator(".who").inner_text() == "alice"
    assert repo_names(page) == [repo]

    # delete a tag on member 1, which does not own the repository: the owner sees it gone
    page.goto(f"{viewer.url}/ui/image/{repo}@{image.digest}")
    page.get_by_role("link", name="Delete tag v1").click()
    page.get_by_role("button", name="Yes, delete").click()
    page.wait_for_url(f"{viewer.url}/ui/image/{repo}@{image.digest}")
    with httpx.Client(base_url=members[0].url, auth=("alice", "alice-pw"), timeout=30) as c:
        assert c.get(manifest_path(repo, "v1")).status_code == 404
        assert c.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v2"]


def test_login_is_needed_without_anonymous_policy(
    members: list[RegistryProcess], page: Any
) -> None:
    page.goto(members[2].url + "/")
    assert page.url == members[2].url + "/ui/login?next=%2F"
    login(page, members[2].url, "alice", "alice-pw")
    assert page.locator(".who").inner_text() == "alice"
