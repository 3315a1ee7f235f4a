"""zot's `userprefs` extension (`PUT /v2/_zot/ext/userprefs`, api/userprefs.py): users star
and bookmark repositories they may read, and the search API answers `StarCount`,
`IsStarred`, `IsBookmarked`, `StarredRepos` and `BookmarkedRepos` from those marks, per
caller; against real server processes, on local disk or (OCIREG_TEST_BACKEND=s3) SeaweedFS
and Redis. zot's reference binary here is built without search, so nothing is compared
side by side with zot: the statuses are those of zot v2.1.20's handler and metadata code."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, TokenServer, client_for, write_htpasswd
from tests.conftest import BACKEND_ENV, s3_cluster_configs, use_backend
from tests.graphql import queries as q
from tests.graphql.conftest import (
    SEARCH,
    TOKEN_CATALOG,
    TOKEN_PUSH,
    TOKEN_REPOS,
    TOKEN_SEEN,
    UI_ON,
    bearer_client,
    bearer_config,
    gql,
)
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import assert_error, push_image
from tests.support.server import RegistryProcess, base_config, running_registry

USERPREFS = "/v2/_zot/ext/userprefs"
MGMT = "/v2/_zot/ext/mgmt"
ACCESS_CONTROL = {
    "repositories": {
        "open/**": {
            "policies": [{"users": ["alice", "bob"], "actions": ["read"]}],
            "anonymousPolicy": ["read"],
        },
        "secret/**": {"policies": [{"users": ["bob"], "actions": ["read"]}]},
    },
    "adminPolicy": {"users": ["root"], "actions": ["read", "create", "update", "delete"]},
}
MARKED = (
    "{{{0}(requestedPage: {{limit: {1}, offset: {2}, sortBy: ALPHABETIC_ASC}})"
    " {{Page {{TotalCount ItemCount}} Results {{Name StarCount IsStarred IsBookmarked}}}}}}"
)


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryProcess]:
    workdir: Path = tmp_path_factory.mktemp("graphql-userprefs")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    cfg = base_config(workdir / "root", workers=2, extensions=UI_ON)
    cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    cfg["http"]["accessControl"] = ACCESS_CONTROL
    if os.environ.get(BACKEND_ENV) == "s3":
        weed, redis = request.getfixturevalue("seaweedfs"), request.getfixturevalue("redis_server")
        prefix = f"userprefs{uuid.uuid4().hex[:8]}"
        use_backend(cfg, weed, redis, f"/{prefix}", prefix)
    with running_registry(workdir, cfg, name="graphql-userprefs") as proc:
        yield proc


@pytest.fixture(scope="module")
def clients(registry: RegistryProcess) -> Iterator[dict[str | None, httpx.Client]]:
    made = {user: client_for(registry, user) for user in (None, "alice", "bob", "root")}
    yield made
    for c in made.values():
        c.close()


def _repos(root: httpx.Client, *names: str) -> list[str]:
    """Repositories of their own for one test (the registry is the module's), one image each."""
    tag = uuid.uuid4().hex[:6]
    made = [name.replace("*", tag) for name in names]
    for name in made:
        push_image(root, name, "v1")
    return made


def _toggle(client: httpx.Client, action: str, repo: str, status: int = 200) -> httpx.Response:
    r = client.put(USERPREFS, params={"action": action, "repo": repo})
    assert r.status_code == status, r.text
    return r


def _marks(client: httpx.Client, names: list[str]) -> dict[str, tuple[int, bool, bool]]:
    """(StarCount, IsStarred, IsBookmarked) of these repositories, as the caller sees them in
    every query that answers a RepoSummary; they must agree."""
    listed = gql(client, q.zui_repo_list(page_size=0))["data"]["RepoListWithNewestImage"]
    searched = gql(client, q.zui_global_search("", page_size=0))["data"]["GlobalSearch"]
    views = []
    for results in (listed["Results"], searched["Repos"]):
        views.append(
            {
                r["Name"]: (r["StarCount"], r["IsStarred"], r["IsBookmarked"])
                for r in results
                if r["Name"] in names
            }
        )
    expanded = {}
    for name in names:
        summary = gql(client, q.zui_expanded_repo_info(name))["data"]["ExpandedRepoInfo"]
        if summary.get("Summary"):
            expanded[name] = summary["Summary"]
    assert views[0] == views[1], views
    for name, summary in expanded.items():
        assert (summary["IsStarred"], summary["IsBookmarked"]) == views[0][name][1:]
    return views[0]


def _marked(client: httpx.Client, query: str, limit: int = 0, offset: int = 0) -> Any:
    return gql(client, MARKED.format(query, limit, offset))["data"][query]


def test_stars_count_per_repository_and_flags_are_the_callers(
    clients: dict[str | None, httpx.Client],
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    app, tool = _repos(clients["root"], "open/*/app", "open/*/tool")
    _toggle(alice, "toggleStar", app)
    _toggle(bob, "toggleStar", app)
    _toggle(bob, "toggleStar", tool)
    _toggle(bob, "toggleBookmark", tool)
    assert _marks(alice, [app, tool]) == {app: (2, True, False), tool: (1, False, False)}
    assert _marks(bob, [app, tool]) == {app: (2, True, False), tool: (1, True, True)}
    # each call toggles: bob takes his star back, alice bookmarks
    _toggle(bob, "toggleStar", app)
    _toggle(alice, "toggleBookmark", app)
    assert _marks(alice, [app, tool]) == {app: (1, True, True), tool: (1, False, False)}
    assert _marks(bob, [app, tool]) == {app: (1, False, False), tool: (1, True, True)}
    # zui's filters of the explore page: the caller's stars and bookmarks
    starred = gql(alice, q.zui_global_search("", page_size=0, starred=True))["data"]
    assert [r["Name"] for r in starred["GlobalSearch"]["Repos"]] == [app]
    marked = gql(bob, q.zui_global_search(tool, bookmarked=True))["data"]["GlobalSearch"]
    assert [r["Name"] for r in marked["Repos"]] == [tool]
    assert marked["Page"] == {"TotalCount": 1, "ItemCount": 1}
    # `false` asks for the repositories not marked, as in zot
    unmarked = gql(
        bob, '{GlobalSearch(query: "' + tool + '", filter: {IsBookmarked: false}) {Repos {Name}}}'
    )
    assert unmarked["data"]["GlobalSearch"]["Repos"] == []


def test_starred_and_bookmarked_repos_are_paged(
    clients: dict[str | None, httpx.Client],
) -> None:
    bob = clients["bob"]
    names = sorted(_repos(clients["root"], "open/*/a", "open/*/b", "open/*/c", "secret/*/d"))
    for name in names:
        _toggle(bob, "toggleStar", name)
    _toggle(bob, "toggleBookmark", names[1])
    everything = [n for n in _marked(bob, "StarredRepos")["Results"] if n["Name"] in names]
    assert [r["Name"] for r in everything] == names
    assert all(r["IsStarred"] and r["StarCount"] == 1 for r in everything)
    second = _marked(bob, "StarredRepos", limit=1, offset=1)
    assert second["Page"]["ItemCount"] == 1
    assert second["Page"]["TotalCount"] >= len(names)
    bookmarked = _marked(bob, "BookmarkedRepos")
    assert [r["Name"] for r in bookmarked["Results"] if r["Name"] in names] == [names[1]]
    assert bookmarked["Results"][0]["IsBookmarked"]


def test_a_repository_the_user_may_not_read(clients: dict[str | None, httpx.Client]) -> None:
    """Refused whether it exists or not (403 before any look at it, as zot); its stars are
    counted, but never shown to someone who may not read it."""
    alice, bob = clients["alice"], clients["bob"]
    (hidden,) = _repos(clients["root"], "secret/*/app")
    _toggle(bob, "toggleStar", hidden)
    _toggle(bob, "toggleBookmark", hidden)
    for action in ("toggleStar", "toggleBookmark"):
        assert_error(_toggle(alice, action, hidden, 403), 403, "DENIED")
        assert_error(_toggle(alice, action, hidden + "-none", 403), 403, "DENIED")
    assert _marks(bob, [hidden]) == {hidden: (1, True, True)}
    assert _marks(alice, [hidden]) == {}
    assert _marks(clients["root"], [hidden]) == {hidden: (1, False, False)}
    names = [r["Name"] for r in _marked(alice, "StarredRepos")["Results"]]
    assert hidden not in names


def test_anonymous_callers_have_no_preferences(clients: dict[str | None, httpx.Client]) -> None:
    """With `anonymousPolicy` the request gets through authentication, then 403 (zot's
    ErrUserDataNotAllowed); anonymous queries see the counts, never a mark."""
    anonymous = clients[None]
    (app,) = _repos(clients["root"], "open/*/anon")
    _toggle(clients["alice"], "toggleStar", app)
    for action in ("toggleStar", "toggleBookmark"):
        assert_error(_toggle(anonymous, action, app, 403), 403, "DENIED")
    assert _marks(anonymous, [app]) == {app: (1, False, False)}
    for query in ("StarredRepos", "BookmarkedRepos"):
        assert _marked(anonymous, query) == {
            "Page": {"TotalCount": 0, "ItemCount": 0},
            "Results": [],
        }


def test_bad_requests(clients: dict[str | None, httpx.Client]) -> None:
    """zot's statuses: no `action`, an unknown one, no `repo`: 400; `repo=`, a repository
    that does not exist or cannot (an invalid name): 404. Nothing is marked by them."""
    alice = clients["alice"]
    (app,) = _repos(clients["root"], "open/*/bad")
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"repo": app}, 400, "QUERY_INVALID"),
        ({"action": "toggleLike", "repo": app}, 400, "QUERY_INVALID"),
        ({"action": "", "repo": app}, 400, "QUERY_INVALID"),
        ({"action": "toggleStar"}, 400, "QUERY_INVALID"),
        ({"action": "toggleStar", "repo": ""}, 404, "NAME_UNKNOWN"),
        ({"action": "toggleStar", "repo": "open/none/here"}, 404, "NAME_UNKNOWN"),
        ({"action": "toggleBookmark", "repo": "open/none/here"}, 404, "NAME_UNKNOWN"),
        ({"action": "toggleStar", "repo": "open/../" + app}, 404, "NAME_UNKNOWN"),
        ({"action": "toggleStar", "repo": "Open/UPPER"}, 404, "NAME_UNKNOWN"),
    ]
    for params, status, code in cases:
        assert_error(alice.put(USERPREFS, params=params), status, code)
    repeated = f"{USERPREFS}?action=toggleStar&repo={app}&repo={app}"
    assert_error(alice.put(repeated), 400, "QUERY_INVALID")
    assert_error(
        alice.get(USERPREFS, params={"action": "toggleStar", "repo": app}), 405, "UNSUPPORTED"
    )
    assert _marks(alice, [app]) == {app: (0, False, False)}


def test_zuis_web_session_toggles(
    registry: RegistryProcess, clients: dict[str | None, httpx.Client]
) -> None:
    """zui's buttons send the PUT with the session cookie and zot's client header; the
    cookie alone (what a form of another site could send) is an anonymous caller."""
    (app,) = _repos(clients["root"], "open/*/zui")
    with httpx.Client(base_url=registry.url, timeout=30) as page:
        form = {"username": "alice", "password": PASSWORDS["alice"], "next": "/"}
        assert page.post("/ui/login", data=form).status_code == 303
        assert_error(_toggle(page, "toggleStar", app, 403), 403, "DENIED")
        page.headers["X-ZOT-API-CLIENT"] = "zot-ui"
        _toggle(page, "toggleStar", app)
        assert _marks(page, [app]) == {app: (1, True, False)}
    assert _marks(clients["alice"], [app]) == {app: (1, True, False)}


def test_routed_with_search_and_ui_only(tmp_path: Path) -> None:
    """zot's AreUserPrefsEnabled: with the UI, listed by discover between search and mgmt;
    search alone: 404, not listed. Without `anonymousPolicy` an anonymous caller is asked
    for credentials first (401), as by search."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", PASSWORDS)
    search_only = {"search": {"enable": True}}
    for name, extensions in (("ui", UI_ON), ("search", search_only)):
        cfg = base_config(tmp_path / name, workers=1, extensions=extensions)
        cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
        with (
            running_registry(tmp_path, cfg, name=f"userprefs-{name}") as registry,
            client_for(registry, "root") as root,
            client_for(registry) as anonymous,
        ):
            push_image(root, "some/app", "v1")
            endpoints = root.get("/v2/_oci/ext/discover").json()["extensions"][0]["endpoints"]
            if extensions is UI_ON:
                assert endpoints == [SEARCH, USERPREFS, MGMT]
                _toggle(root, "toggleStar", "some/app")  # authentication alone: all readable
                assert _marks(root, ["some/app"]) == {"some/app": (1, True, False)}
                assert_error(_toggle(anonymous, "toggleStar", "some/app", 401), 401, "UNAUTHORIZED")
            else:
                assert endpoints == [SEARCH, MGMT]
                assert_error(_toggle(root, "toggleStar", "some/app", 404), 404, "NOT_FOUND")


def test_cluster_members_keep_the_marks_of_what_they_hold(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """With separate storage per member the request goes to the member that holds the
    repository (its `repo` routes it), which keeps the mark and answers for it in search;
    on one shared root (sqlite) or one Redis the members share the metadata store, so any
    member sees it."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", PASSWORDS)
    variants = ["separate", "shared"]
    if os.environ.get(BACKEND_ENV) == "s3":
        variants.append("redis")  # SeaweedFS + Redis, a local root each: Redis is shared
    for variant in variants:
        shared = variant != "separate"
        workdir = tmp_path / variant
        workdir.mkdir()
        if variant == "redis":
            weed, redis = (
                request.getfixturevalue("seaweedfs"),
                request.getfixturevalue("redis_server"),
            )
            configs = s3_cluster_configs(workdir, weed, redis, count=2, extensions=UI_ON)
        else:
            configs = cluster_configs(workdir, count=2, shared_root=shared, extensions=UI_ON)
        for cfg in configs:
            cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
        with running_members(workdir, configs) as members:
            first, second = (client_for(m, "alice") for m in members)
            name = repo_owned_by(1, 2, "marks")  # held by the second member
            push_image(first, name, "v1")
            _toggle(first, "toggleStar", name)
            assert _marks(second, [name]) == {name: (1, True, False)}
            if shared:
                assert _marks(first, [name]) == {name: (1, True, False)}
            first.close()
            second.close()


def test_bearer_tokens_mark_what_they_may_pull(tmp_path: Path) -> None:
    """With a token server the token decides, as for search: the catalog scope to ask at
    all (401 naming it otherwise), then its `pull` grant on the repository (403 without)."""
    with TokenServer(tmp_path / "tokens") as tokens:
        cfg = bearer_config(tokens, tmp_path / "root", UI_ON)
        with running_registry(tmp_path, cfg, name="userprefs-bearer") as proc:
            with bearer_client(tokens, proc.url, TOKEN_PUSH) as pusher:
                for name in TOKEN_REPOS:
                    push_image(pusher, name, "v1")
            with bearer_client(tokens, proc.url, [TOKEN_CATALOG, TOKEN_SEEN]) as reader:
                _toggle(reader, "toggleBookmark", "tok/seen")
                assert_error(_toggle(reader, "toggleBookmark", "tok/hidden", 403), 403, "DENIED")
                assert _marks(reader, TOKEN_REPOS) == {"tok/seen": (0, False, True)}
            with bearer_client(tokens, proc.url, [TOKEN_SEEN]) as no_catalog:
                r = _toggle(no_catalog, "toggleStar", "tok/seen", 401)
                assert 'scope="registry:catalog:*"' in r.headers["www-authenticate"]
