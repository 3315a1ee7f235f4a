"""The web pages with `http.auth.bearer`: users log in with the token server's credentials
and see only what its tokens grant them (the token server of tests/auth, a real HTTP server
on loopback, a real ocireg, Chromium).

Grants: alice and dave may pull and delete x/app and nothing else; carol may only pull
x/app; bob gets tokens that grant nothing; dave's password changes while he is logged in;
root pushes the content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, SERVICE, TokenServer
from tests.auth.test_bearer import token_client
from tests.support.oci import Image, assert_error, manifest_path, push_image
from tests.support.server import RegistryProcess, base_config, free_port, running_registry
from tests.ui.conftest import UI, login, login_status, repo_names

X, Y = "x/app", "y/secret"


def bearer_registry(workdir: Any, realm: str, cert: str) -> Any:
    cfg = base_config(workdir / "root", workers=1, extensions=UI)
    cfg["http"]["auth"] = {"bearer": {"realm": realm, "service": SERVICE, "cert": cert}}
    return running_registry(workdir, cfg)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """The token server of tests/auth, on its own port."""
    with TokenServer(tmp_path_factory.mktemp("tokens")) as server:
        yield server


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory,
    tokens: TokenServer,
) -> Iterator[RegistryProcess]:
    tokens.grants.update(
        {
            "root": {X: ["pull", "push"], Y: ["pull", "push"]},
            "alice": {X: ["pull", "delete"]},
            "carol": {X: ["pull"]},
            "dave": {X: ["pull", "delete"]},
        }
    )
    workdir = tmp_path_factory.mktemp("ui-bearer")
    with bearer_registry(workdir, tokens.realm, str(tokens.files.cert)) as proc:
        yield proc


@pytest.fixture(scope="module")
def images(registry: RegistryProcess) -> dict[str, Image]:
    with token_client(registry, "root") as root:
        return {
            "x1": push_image(root, X, "alpha"),
            "x2": push_image(root, X, "beta"),
            "y1": push_image(root, Y, "alpha"),
        }


def test_login_shows_only_what_the_token_server_grants(
    registry: RegistryProcess, tokens: TokenServer, images: dict[str, Image], page: Any
) -> None:
    login(page, registry.url, "alice", PASSWORDS["alice"])
    assert page.locator(".who").inner_text() == "alice"
    assert repo_names(page) == [X]
    # the cookie seals the credentials: under 4 KiB, the password not readable in it
    cookie = next(c for c in page.context.cookies() if c["name"] == "ocireg_session")
    assert len(cookie["value"]) < 4096 and PASSWORDS["alice"] not in cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # the page asked for pull on the names it would show, and keeps the answers
    asked_for = {scope for query in tokens.requests for scope in query.get("scope", [])}
    assert {f"repository:{X}:pull", f"repository:{Y}:pull"} <= asked_for
    asked = len(tokens.requests)
    page.reload()
    assert repo_names(page) == [X]
    assert len(tokens.requests) == asked

    # search: by name and by tag, only x/app
    page.goto(registry.url + "/ui/search?q=secret")
    assert page.locator("#repository-hits").count() == 0
    page.goto(registry.url + "/ui/search?q=alpha")
    assert page.locator("#image-hits tbody tr a").all_inner_texts() == [f"{X}:alpha"]
    assert page.goto(f"{registry.url}/ui/repo/{X}").status == 200
    response = page.goto(f"{registry.url}/ui/repo/{Y}")
    assert response.status == 404 and page.locator("h1").inner_text() == "Not found"
    assert page.goto(f"{registry.url}/ui/image/{Y}@{images['y1'].digest}").status == 404


def test_delete_a_tag_with_a_delete_grant(
    registry: RegistryProcess, images: dict[str, Image], page: Any
) -> None:
    login(page, registry.url, "alice", PASSWORDS["alice"])
    page.goto(f"{registry.url}/ui/image/{X}@{images['x1'].digest}")
    page.get_by_role("link", name="Delete tag alpha").click()
    page.locator("#confirm-delete").click()
    page.wait_for_url(re.compile(re.escape(images["x1"].digest) + "$"))  # the image stays
    with token_client(registry, "root") as root:
        assert_error(root.get(manifest_path(X, "alpha")), 404, "MANIFEST_UNKNOWN")
        assert root.get(manifest_path(X, "beta")).status_code == 200
    # a repository without a delete grant: neither a button nor a confirmation page
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(registry.url + "/ui/login")
    login(page, registry.url, "carol", PASSWORDS["carol"])
    page.goto(f"{registry.url}/ui/image/{X}@{images['x2'].digest}")
    assert page.get_by_role("link", name=re.compile("^Delete")).count() == 0
    assert page.goto(f"{registry.url}/ui/delete?repo={X}&reference=beta").status == 403


def test_wrong_password_and_a_user_granted_nothing(
    registry: RegistryProcess, images: dict[str, Image], page: Any
) -> None:
    page.goto(registry.url + "/")
    page.wait_for_url(registry.url + "/ui/login?next=%2F")  # no anonymous access with bearer
    assert login_status(page, registry.url, "alice", "wrong") == 401
    assert "Wrong username or password" in page.get_by_role("alert").inner_text()
    login(page, registry.url, "bob", PASSWORDS["bob"])
    assert repo_names(page) == []
    page.goto(registry.url + "/ui/search?q=alpha")
    assert page.locator("#image-hits").count() == 0
    assert page.goto(f"{registry.url}/ui/repo/{X}").status == 404


def test_a_password_the_token_server_no_longer_takes_ends_the_session(
    registry: RegistryProcess, images: dict[str, Image], page: Any
) -> None:
    login(page, registry.url, "dave", PASSWORDS["dave"])
    assert repo_names(page) == [X]
    PASSWORDS["dave"] = "changed"  # what the token server checks
    try:
        # the delete scope is not cached yet: the token request is refused
        page.goto(f"{registry.url}/ui/image/{X}@{images['x2'].digest}")
        page.wait_for_url(registry.url + "/ui/login")
        assert not [c for c in page.context.cookies() if c["name"] == "ocireg_session"]
    finally:
        PASSWORDS["dave"] = "dave-pw"


def test_token_server_down_is_a_503_page(
    tmp_path_factory: pytest.TempPathFactory,
    tokens: TokenServer,
    page: Any,
) -> None:
    realm = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there
    workdir = tmp_path_factory.mktemp("ui-bearer-down")
    with bearer_registry(workdir, realm, str(tokens.files.cert)) as registry:
        assert login_status(page, registry.url, "alice", PASSWORDS["alice"]) == 503
        assert page.locator("h1").inner_text() == "Unavailable"
        assert "token server did not answer" in page.get_by_role("alert").inner_text()
        # the process is fine: its API still answers (with the bearer challenge)
        assert httpx.get(registry.url + "/v2/", timeout=10).status_code == 401
