"""Who sees what through the GraphQL search: every result filtered by read access as the API
decides it (a user never sees a repository name they may not read, and a query naming one
answers as zot answers it, empty), credentials as for the catalog; in a cluster on shared
storage any member answers for the whole registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, TokenServer, client_for, write_htpasswd
from tests.graphql import queries as q
from tests.graphql.conftest import (
    SEARCH,
    TOKEN_CATALOG,
    TOKEN_PUSH,
    TOKEN_REPOS,
    TOKEN_SEEN,
    bearer_client,
    bearer_config,
    gql,
)
from tests.support.cluster import repo_owned_by, running_cluster
from tests.support.oci import assert_error, push_artifact, push_image
from tests.support.server import RegistryProcess, base_config, running_registry

ALL = ["read", "create", "update", "delete"]
ACCESS_CONTROL = {
    "repositories": {
        "open/**": {"policies": [{"users": ["alice"], "actions": ["read"]}]},
        "secret/**": {"policies": [{"users": ["bob"], "actions": ["read", "delete"]}]},
    },
    "adminPolicy": {"users": ["root"], "actions": ALL},
}
SEARCH_ON = {"search": {"enable": True}}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir: Path = tmp_path_factory.mktemp("graphql-access")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    cfg = base_config(workdir / "root", workers=1, extensions=SEARCH_ON)
    cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    cfg["http"]["accessControl"] = ACCESS_CONTROL
    with running_registry(workdir, cfg, name="graphql-access") as proc:
        yield proc


@pytest.fixture(scope="module")
def clients(registry: RegistryProcess) -> Iterator[dict[str | None, httpx.Client]]:
    made = {user: client_for(registry, user) for user in (None, "alice", "bob", "root")}
    image = push_image(made["root"], "open/app", "v1")
    push_image(made["root"], "secret/app", "v1")
    push_artifact(made["root"], "secret/app", image, "application/vnd.example.sig")
    yield made
    for c in made.values():
        c.close()


def _names(client: httpx.Client) -> set[str]:
    repos = gql(client, q.zui_global_search("app"))["data"]["GlobalSearch"]["Repos"]
    listed = gql(client, q.zui_repo_list())["data"]["RepoListWithNewestImage"]["Results"]
    images = gql(client, q.zli_image_list(""))["data"]["ImageList"]["Results"]
    tags = gql(client, q.zui_image_suggestions(":v1"))["data"]["GlobalSearch"]["Images"]
    found = [{r["Name"] for r in repos}, {r["Name"] for r in listed}]
    found += [{i["RepoName"] for i in images}, {i["RepoName"] for i in tags}]
    assert all(names == found[0] for names in found), found
    return found[0]


def test_results_hold_only_what_the_user_may_read(
    clients: dict[str | None, httpx.Client],
) -> None:
    assert _names(clients["alice"]) == {"open/app"}
    assert _names(clients["bob"]) == {"secret/app"}
    assert _names(clients["root"]) == {"open/app", "secret/app"}


def test_pages_count_only_what_the_user_may_read(
    clients: dict[str | None, httpx.Client],
) -> None:
    """The lists order and count from the search index, which holds every repository: the
    names are filtered before counting and paging, so a page never holds a hidden one and
    the counts do not reveal it."""
    counts = "Page {TotalCount ItemCount}"
    repos = (
        "{RepoListWithNewestImage(requestedPage: {limit: 1 offset: OFFSET})"
        f" {{{counts} Results {{Name}}}}}}"
    )
    images = (
        '{ImageList(repo: "", requestedPage: {limit: 1 offset: OFFSET sortBy: ALPHABETIC_DSC})'
        f" {{{counts} Results {{RepoName}}}}}}"
    )

    def page(user: str, query: str, offset: int) -> tuple[dict[str, int], list[str]]:
        found = gql(clients[user], query.replace("OFFSET", str(offset)))["data"]
        (result,) = found.values()
        names = [r.get("Name") or r.get("RepoName") for r in result["Results"]]
        return result["Page"], names

    for query in (repos, images):
        assert page("alice", query, 0) == ({"TotalCount": 1, "ItemCount": 1}, ["open/app"])
        assert page("alice", query, 1) == ({"TotalCount": 1, "ItemCount": 0}, [])
        assert page("bob", query, 0) == ({"TotalCount": 1, "ItemCount": 1}, ["secret/app"])
        assert page("root", query, 1)[0] == {"TotalCount": 2, "ItemCount": 1}
    assert page("root", images, 0)[1] == ["secret/app"]
    assert page("root", images, 1)[1] == ["open/app"]


def test_a_hidden_repository_answers_empty(clients: dict[str | None, httpx.Client]) -> None:
    alice = clients["alice"]
    info = gql(alice, q.zui_expanded_repo_info("secret/app"))
    assert info == {"data": {"ExpandedRepoInfo": {"Images": None, "Summary": None}}}
    image = gql(alice, q.zui_image("secret/app", "v1"))["data"]["Image"]
    assert set(image.values()) == {None}
    digest = gql(clients["root"], q.zui_image("open/app", "v1"))["data"]["Image"]["Manifests"][0]
    referrers = gql(alice, q.zli_referrers("secret/app", digest["Digest"]))
    assert referrers == {"data": {"Referrers": []}}


@pytest.mark.parametrize("name", ["open/../secret/app", "open/app/../../secret/app", "open/"])
def test_a_name_that_is_not_one_answers_empty(
    clients: dict[str | None, httpx.Client], name: str
) -> None:
    # `open/../secret/app` matches alice's glob `open/**`: only the storage driver's path
    # check refused it, and its error named the path it had built.
    alice = clients["alice"]
    info = gql(alice, q.zui_expanded_repo_info(name))
    assert info == {"data": {"ExpandedRepoInfo": {"Images": None, "Summary": None}}}
    image = gql(alice, q.zui_image(name, "v1"))["data"]["Image"]
    assert set(image.values()) == {None}
    listed = gql(alice, q.zli_image_list(name))["data"]["ImageList"]["Results"]
    assert listed == []


def test_is_deletable_follows_the_delete_permission(
    clients: dict[str | None, httpx.Client],
) -> None:
    def deletable(user: str, repo: str) -> bool:
        info = gql(clients[user], q.zui_expanded_repo_info(repo))["data"]["ExpandedRepoInfo"]
        (image,) = info["Images"]
        flag: bool = image["IsDeletable"]
        return flag

    assert deletable("alice", "open/app") is False
    assert deletable("bob", "secret/app") is True
    assert deletable("root", "open/app") is True


def test_anonymous_is_challenged(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}{SEARCH}", params={"query": q.zui_repo_list()})
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers["www-authenticate"].startswith("Basic ")


def test_any_cluster_member_answers_for_the_registry(tmp_path: Path) -> None:
    """Two members on one root: repositories owned by either are found through each."""
    with running_cluster(tmp_path, count=2, extensions=SEARCH_ON) as members:
        first = httpx.Client(base_url=members[0].url, timeout=30.0)
        second = httpx.Client(base_url=members[1].url, timeout=30.0)
        names = sorted(repo_owned_by(i % 2, 2, "spread") for i in range(4))  # two per owner
        for name in names:
            push_image(first, name, "v1")
        for client in (first, second):
            found = gql(client, q.zui_global_search("spread"))["data"]["GlobalSearch"]
            assert sorted(r["Name"] for r in found["Repos"]) == names
            assert found["Page"] == {"TotalCount": 4, "ItemCount": 4}
        first.close()
        second.close()


def test_bearer_tokens_see_what_they_may_pull(tmp_path: Path) -> None:
    """With a token server, the token's grants decide: the catalog scope to ask at all (as for
    /v2/_catalog), then only the repositories it may pull."""
    with TokenServer(tmp_path / "tokens") as token_server:
        _search_with_tokens(tmp_path, token_server)


def _search_with_tokens(tmp_path: Path, token_server: TokenServer) -> None:
    cfg = bearer_config(token_server, tmp_path / "root", SEARCH_ON)

    def client(url: str, access: list[dict[str, Any]]) -> httpx.Client:
        return bearer_client(token_server, url, access)

    with running_registry(tmp_path, cfg, name="graphql-bearer") as proc:
        with client(proc.url, TOKEN_PUSH) as pusher:
            for name in TOKEN_REPOS:
                push_image(pusher, name, "v1")
        with client(proc.url, [TOKEN_CATALOG, TOKEN_SEEN]) as reader:
            found = gql(reader, q.zui_global_search("tok"))["data"]["GlobalSearch"]["Repos"]
            assert [r["Name"] for r in found] == ["tok/seen"]
            info = gql(reader, q.zui_expanded_repo_info("tok/seen"))["data"]["ExpandedRepoInfo"]
            assert info["Images"][0]["IsDeletable"] is False  # no delete grant
        with client(proc.url, [TOKEN_SEEN]) as no_catalog:
            r = no_catalog.get(SEARCH, params={"query": q.zui_repo_list()})
            assert_error(r, 401, "UNAUTHORIZED")
            assert 'scope="registry:catalog:*"' in r.headers["www-authenticate"]
