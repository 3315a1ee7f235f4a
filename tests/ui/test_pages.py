"""The web pages in a real browser against one ocireg process: the repositories list with
filter-as-you-type and paging, a repository's tags with platforms and pull commands, an
image's config, layers and referrers (followed both ways), login, access control hiding a
repository, and deleting a tag with confirmation and a CSRF token.

Users: alice may do anything under pub/ and team/; bob only reads pub/ (defaultPolicy);
anonymous users read pub/ (anonymousPolicy)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.auth.conftest import write_htpasswd
from tests.support.oci import manifest_path
from tests.support.server import RegistryProcess, base_config, running_registry
from tests.ui.conftest import UI, login, login_status, repo_names
from tests.ui.sample import SIGNATURE, Content, push_sample

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
ALL = ["read", "create", "update", "delete"]
ACCESS = {
    "repositories": {
        "pub/**": {
            "anonymousPolicy": ["read"],
            "defaultPolicy": ["read"],
            "policies": [{"users": ["alice"], "actions": ALL}],
        },
        "team/**": {"policies": [{"users": ["alice"], "actions": ALL}]},
    }
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("ui")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    cfg = base_config(workdir / "root", workers=1, extensions=UI)
    cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    cfg["http"]["accessControl"] = ACCESS
    with running_registry(workdir, cfg) as proc:
        yield proc


@pytest.fixture(scope="module")
def content(registry: RegistryProcess) -> Content:
    with httpx.Client(base_url=registry.url, auth=("alice", "alice-pw"), timeout=30) as c:
        return push_sample(c)


def test_repositories_filter_as_you_type_and_paging(
    registry: RegistryProcess, content: Content, page: Any
) -> None:
    page.goto(registry.url + "/")
    assert repo_names(page) == ["pub/app", "pub/tools", "pub/zeta"]  # anonymous: no team/
    row = page.locator("#results tbody tr").first
    assert row.locator("td").nth(1).inner_text() == "2"  # 1.0 and plain; the signature: none
    assert re.fullmatch(r"\d+(\.\d)? (B|KiB)", row.locator("td").nth(3).inner_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row.locator("td").nth(2).inner_text())

    # typing narrows the list without submitting the form (the script fetches and swaps)
    page.get_by_label("Filter by name").press_sequentially("too", delay=30)
    expect(page.locator("#results tbody tr")).to_have_count(1)
    assert repo_names(page) == ["pub/tools"]
    assert page.url.endswith("/?q=too")
    page.get_by_label("Filter by name").fill("")
    page.get_by_label("Filter by name").press_sequentially("nothing-like-this")
    page.locator(".empty").wait_for()
    assert "No repository you may read" in page.locator(".empty").inner_text()

    # paging: one per page, following "Next page" to the end
    page.goto(registry.url + "/?n=1")
    seen = []
    for _ in range(5):
        seen += repo_names(page)
        following = page.get_by_role("link", name="Next page")
        if following.count() == 0:
            break
        following.click()
        page.wait_for_load_state()
    assert seen == ["pub/app", "pub/tools", "pub/zeta"]


def test_repository_page_platforms_and_pull_command(
    registry: RegistryProcess, content: Content, page: Any
) -> None:
    # Through "localhost": the pull command names the host the browser used.
    base = f"http://localhost:{registry.port}"
    page.goto(base + "/")
    page.get_by_role("link", name="pub/app").click()
    page.wait_for_url(base + "/ui/repo/pub/app")
    assert page.locator("h1").inner_text() == "pub/app"
    row = page.locator("tbody tr", has=page.get_by_role("link", name="1.0", exact=True))
    assert "linux/amd64, linux/arm64/v8" in row.inner_text()
    pulls = row.locator("input.copy")
    assert pulls.nth(0).input_value() == f"docker pull localhost:{registry.port}/pub/app:1.0"
    assert pulls.nth(1).input_value() == f"podman pull localhost:{registry.port}/pub/app:1.0"
    # the index's children are one click away
    row.get_by_role("link", name="1.0", exact=True).click()
    page.wait_for_url(re.compile(re.escape(content.app_index) + "$"))
    assert page.get_by_role("link", name=re.compile("sha256:")).count() >= 2
    assert "linux/arm64/v8" in page.locator("#children-h + .scroll").inner_text()


@pytest.mark.parametrize("n", ["%C2%B2", "9" * 5000, "-1", "abc", "0"])
def test_page_sizes_that_are_not_numbers_fall_back_to_the_default(
    registry: RegistryProcess, content: Content, n: str
) -> None:
    # "²" passes str.isdigit and not int(), and int() refuses 5,000 digits: both were a 500.
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        for path in ("/", "/ui/repo/pub/app", "/ui/search?q=app"):
            r = c.get(f"{path}{'&' if '?' in path else '?'}n={n}")
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            assert "pub/app" in r.text


def test_image_page_config_layers_and_referrer_tree(
    registry: RegistryProcess, content: Content, page: Any
) -> None:
    plain = content.plain
    page.goto(f"{registry.url}/ui/image/pub/app@{plain.digest}")
    text = page.locator("main").inner_text()
    assert '["/app"]' in text and '["--serve"]' in text
    assert "MODE=production" in text
    assert "https://example.test/app" in text  # the label
    assert 'ENTRYPOINT ["/app"]' in text  # history
    assert page.locator("#layers-h + .scroll tbody tr").count() == 2
    assert page.locator("pre.json").inner_text().startswith("{\n")
    # follow the signature, then back through its subject
    page.locator("a.referrer").click()
    page.wait_for_url(re.compile(re.escape(content.signature.digest) + "$"))
    assert SIGNATURE in page.locator("main").inner_text()
    page.locator("a.subject").click()
    page.wait_for_url(re.compile(re.escape(plain.digest) + "$"))
    # a digest that is not stored: a real error page, 404
    missing = "sha256:" + "0" * 64
    response = page.goto(f"{registry.url}/ui/image/pub/app@{missing}")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    # a page path that does not exist: the pages' own 404, not the API's JSON
    response = page.goto(f"{registry.url}/ui/nothing/here")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"


def test_login_and_access_control_hide_a_repository(
    registry: RegistryProcess, content: Content, page: Any
) -> None:
    # anonymous: team/secret is neither listed nor found, its page says nothing exists
    response = page.goto(registry.url + "/ui/repo/team/secret")
    assert response.status == 404
    page.goto(registry.url + "/?q=secret")
    assert repo_names(page) == []
    # a wrong password: the form again, 401
    assert login_status(page, registry.url, "bob", "wrong") == 401
    assert "Wrong username or password" in page.get_by_role("alert").inner_text()
    # bob reads pub/ only
    login(page, registry.url, "bob", "bob-pw")
    assert page.locator(".who").inner_text() == "bob"
    assert "team/secret" not in repo_names(page)
    assert page.goto(registry.url + "/ui/repo/team/secret").status == 404
    cookie = next(c for c in page.context.cookies() if c["name"] == "ocireg_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # bob may not delete in pub/: no delete buttons
    page.goto(f"{registry.url}/ui/image/pub/app@{content.plain.digest}")
    assert page.get_by_role("link", name=re.compile("^Delete")).count() == 0
    # alice reads team/ too
    page.get_by_role("button", name="Log out").click()
    login(page, registry.url, "alice", "alice-pw")
    assert repo_names(page) == ["pub/app", "pub/tools", "pub/zeta", "team/secret"]
    # a forged cookie is anonymous again
    page.context.add_cookies(
        [{"name": "ocireg_session", "value": cookie["value"] + "x", "url": registry.url}]
    )
    page.goto(registry.url + "/")
    assert "team/secret" not in repo_names(page)


def test_search_from_the_header_honours_access_control(
    registry: RegistryProcess, content: Content, page: Any
) -> None:
    page.goto(registry.url + "/")
    page.get_by_label("Search").fill("keep")
    page.get_by_label("Search").press("Enter")
    page.wait_for_url(re.compile(r"/ui/search\?q=keep$"))
    # anonymous: team/secret's tag "keep" is not found, nor is the repository by its name
    assert "No tag you may read" in page.locator("main").inner_text()
    page.goto(registry.url + "/ui/search?q=secret")
    assert page.locator("#repository-hits").count() == 0
    page.goto(registry.url + "/ui/search?q=plain")
    hits = page.locator("#image-hits tbody tr a")
    assert hits.all_inner_texts() == ["pub/app:plain"]
    hits.first.click()
    page.wait_for_url(re.compile(re.escape(content.plain.digest) + "$"))
    # alice may read team/: the same searches find it
    login(page, registry.url, "alice", "alice-pw")
    page.goto(registry.url + "/ui/search?q=secret")
    assert page.locator("#repository-hits tbody tr a").all_inner_texts() == ["team/secret"]
    page.goto(registry.url + "/ui/search?q=keep")
    assert page.locator("#image-hits tbody tr a").all_inner_texts() == ["team/secret:keep"]


def test_delete_tag_with_confirmation(
    registry: RegistryProcess, content: Content, page: Any
) -> None:
    old = content.secret_old
    login(page, registry.url, "alice", "alice-pw")
    page.goto(f"{registry.url}/ui/image/team/secret@{old.digest}")
    page.get_by_role("link", name="Delete tag old").click()
    assert page.locator("h1").inner_text() == "Delete tag old?"
    # without its token the same POST is refused (another site cannot forge it)
    with httpx.Client(base_url=registry.url, cookies=_cookies(page), timeout=30) as c:
        forged = c.post("/ui/delete", params={"repo": "team/secret", "reference": "old"})
        assert forged.status_code == 403
        # one repository for the cluster's routing (the first), another for the page: refused
        twice = [("repo", "pub/app"), ("repo", "team/secret"), ("reference", "old")]
        assert c.get("/ui/delete", params=twice).status_code == 400
    page.get_by_role("button", name="Yes, delete").click()
    # the tag is gone, the image remains: back on its page, without the tag
    page.wait_for_url(re.compile(re.escape(old.digest) + "$"))
    assert "none (reachable by digest)" in page.locator("main").inner_text()
    with httpx.Client(base_url=registry.url, auth=("alice", "alice-pw"), timeout=30) as c:
        assert c.get(manifest_path("team/secret", "old")).status_code == 404
        assert c.get(manifest_path("team/secret", old.digest)).status_code == 200
        assert c.get("/v2/team/secret/tags/list").json()["tags"] == ["keep"]
    page.goto(registry.url + "/ui/repo/team/secret")
    assert page.get_by_role("link", name="old", exact=True).count() == 0
    assert page.get_by_text("1 tag", exact=True).count() == 1


def _cookies(page: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def test_keyboard_alone_and_a_phone_screen(
    registry: RegistryProcess, content: Content, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(registry.url + "/")
        # nothing wider than the screen: wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # Tab to the filter, type, Enter; Tab to the first result, Enter (the header comes
        # first: skip link, home, search, log in)
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "q":
                break
        page.keyboard.type("zeta")
        page.keyboard.press("Enter")
        page.wait_for_url(registry.url + "/?q=zeta")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "pub/zeta":
                break
        page.keyboard.press("Enter")
        page.wait_for_url(registry.url + "/ui/repo/pub/zeta")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
