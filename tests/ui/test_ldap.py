"""The web pages with `http.auth.ldap` (and htpasswd beside it): a real ocireg, a real
directory (Debian's slapd), the login form posted over HTTP as a browser posts it (and once
through Chromium).

The directory (tests/support/ldap.py): alice in the groups devs and ops, bob in none; erin
and frank come and go. The htpasswd file: root, who pushes, and dave, whom
`accessControl.groups` puts in devs. devs may read devs/, ops may read ops/, only root
secret/."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import write_htpasswd
from tests.support.backends import Slapd, running_slapd
from tests.support.ldap import fill_directory, ldap_keys
from tests.support.oci import push_small_image
from tests.support.server import RegistryProcess, base_config, running_registry
from tests.ui.conftest import UI, login, repo_names

ALL = ["read", "create", "update", "delete"]
ACCESS = {
    "repositories": {
        "devs/**": {"policies": [{"groups": ["devs"], "actions": ["read"]}]},
        "ops/**": {"policies": [{"groups": ["ops"], "actions": ["read"]}]},
        "secret/**": {"policies": [{"users": ["root"], "actions": ALL}]},
    },
    "adminPolicy": {"users": ["root"], "actions": ALL},
    "groups": {"devs": {"users": ["dave"]}},
}
REPOS = ["devs/app", "ops/tool", "secret/x"]
WRONG = "Wrong username or password."
DOWN = "The LDAP directory did not answer"


def ldap_registry(workdir: Path, slapd: Slapd) -> Any:
    htpasswd = write_htpasswd(workdir / "users.htpasswd", {"root": "root-pw", "dave": "local"})
    # one worker: what it remembered of the directory is what the tests reason about
    cfg = base_config(workdir / "root", workers=1, extensions=UI)
    cfg["http"]["auth"] = {
        "htpasswd": {"path": str(htpasswd)},
        "ldap": ldap_keys(slapd, workdir, subtreeSearch=True),
    }
    cfg["http"]["accessControl"] = ACCESS
    return running_registry(workdir, cfg)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with running_slapd(tmp_path_factory.mktemp("slapd")) as server:
        fill_directory(server)
        yield server


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, slapd: Slapd) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("ui-ldap")
    with ldap_registry(workdir, slapd) as proc:
        with httpx.Client(base_url=proc.url, auth=("root", "root-pw"), timeout=30) as root:
            for repo in REPOS:
                assert push_small_image(root, repo, "v1")[0].status_code == 201
        yield proc


def log_in(c: httpx.Client, user: str, password: str) -> httpx.Response:
    """The login form, posted."""
    form = {"username": user, "password": password, "next": "/"}
    return c.post("/ui/login", data=form, follow_redirects=False)


def listed(c: httpx.Client) -> list[str]:
    """The repositories the list page names."""
    r = c.get("/")
    assert r.status_code == 200, r.text
    return re.findall(r'<td><a href="/ui/repo/([^"]+)">', r.text)


def session_cookie(c: httpx.Client) -> str | None:
    return c.cookies.get("ocireg_session")


def test_a_directory_user_sees_what_their_groups_may_read(registry: RegistryProcess) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        r = log_in(c, "alice", "wonderland")
        assert (r.status_code, r.headers["location"]) == (303, "/")
        cookie = session_cookie(c)
        assert cookie is not None and "wonderland" not in cookie
        assert listed(c) == ["devs/app", "ops/tool"]  # her groups devs and ops
        assert c.get("/ui/repo/devs/app").status_code == 200
        assert c.get("/ui/repo/secret/x").status_code == 404  # as if it did not exist
        assert "alice" in c.get("/").text
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(c, "bob", "builder").status_code == 303  # in the directory, no groups
        assert listed(c) == []
        assert c.get("/ui/repo/devs/app").status_code == 404


def test_a_wrong_password_or_an_unknown_user_is_the_form_again(registry: RegistryProcess) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        for user, password in (("alice", "bad"), ("carol", "x"), ("dave", "wonderland")):
            r = log_in(c, user, password)
            assert r.status_code == 401, user
            assert WRONG in r.text and 'name="username"' in r.text
            assert session_cookie(c) is None
        assert c.get("/", follow_redirects=False).headers["location"] == "/ui/login?next=%2F"


def test_an_htpasswd_user_beside_the_directory(registry: RegistryProcess) -> None:
    """dave is in the htpasswd file: he logs in by it (asked first) and his groups are
    accessControl's."""
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(c, "dave", "local").status_code == 303
        assert listed(c) == ["devs/app"]
        assert c.get("/ui/repo/ops/tool").status_code == 404
        assert c.post("/ui/logout", follow_redirects=False).status_code == 303
        assert session_cookie(c) is None
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(c, "root", "root-pw").status_code == 303
        assert listed(c) == REPOS


def test_the_directory_has_the_last_word_on_groups_and_users(
    registry: RegistryProcess, slapd: Slapd
) -> None:
    """A session holds no groups and no password: its pages ask the directory (at most once
    a minute per worker; the first page after the login asks), so a change of groups
    applies and a user removed from the directory is logged out."""
    erin = slapd.add_user("erin", "enigma", departmentNumber=["devs"])
    frank = slapd.add_user("frank", "fr4nk", departmentNumber=["devs"])
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(c, "erin", "enigma").status_code == 303
        slapd.replace(erin, departmentNumber=["ops"])
        assert listed(c) == ["ops/tool"]
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(c, "frank", "fr4nk").status_code == 303
        slapd.delete(frank)
        r = c.get("/", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/ui/login")
        assert session_cookie(c) is None  # the cookie is deleted


def test_a_directory_user_logs_in_with_a_browser(registry: RegistryProcess, page: Any) -> None:
    login(page, registry.url, "alice", "wonderland")
    assert page.locator(".who").inner_text() == "alice"
    assert repo_names(page) == ["devs/app", "ops/tool"]


def test_a_directory_that_is_slow_or_down_is_a_message(tmp_path: Path) -> None:
    """Never a 500 and never a stalled server: a directory that does not answer makes the
    login form say so (503) while other requests are answered; a session whose user cannot
    be looked up gets the pages' 503; htpasswd users still log in."""
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)
        with ldap_registry(tmp_path, slapd) as proc:
            with httpx.Client(base_url=proc.url, auth=("root", "root-pw"), timeout=30) as root:
                assert push_small_image(root, "devs/app", "v1")[0].status_code == 201
            bob = httpx.Client(base_url=proc.url, timeout=30)
            assert log_in(bob, "bob", "builder").status_code == 303  # no page seen yet
            slapd.pause()  # a directory that accepts connections and never answers
            answers: list[httpx.Response] = []

            def slow_login() -> None:
                with httpx.Client(base_url=proc.url, timeout=60) as c:
                    answers.append(log_in(c, "alice", "wonderland"))

            waiting = threading.Thread(target=slow_login)
            waiting.start()
            # While alice's check waits for the directory (10 s), the worker answers.
            with httpx.Client(base_url=proc.url, timeout=5) as c:
                assert c.get("/livez").status_code == 200
                assert c.get("/ui/login").status_code == 200
                assert log_in(c, "dave", "local").status_code == 303
                assert listed(c) == ["devs/app"]
            assert waiting.is_alive()
            waiting.join(timeout=60)
            assert not waiting.is_alive()
            assert answers[0].status_code == 503
            assert DOWN in answers[0].text and 'name="username"' in answers[0].text

            slapd.stop()  # now down: connections refused
            r = bob.get("/")
            assert r.status_code == 503 and DOWN in r.text
            bob.close()
            with httpx.Client(base_url=proc.url, timeout=30) as c:
                r = log_in(c, "alice", "wonderland")
                assert r.status_code == 503 and DOWN in r.text
                assert session_cookie(c) is None
                assert log_in(c, "dave", "local").status_code == 303
            with httpx.Client(base_url=proc.url, auth=("alice", "wonderland"), timeout=30) as c:
                assert c.get("/v2/").status_code == 401  # the API: a refusal, as zot
            assert "LDAP check failed" in proc.log_path.read_text()


@pytest.mark.parametrize(("user", "password"), [("alice", "wonderland"), ("dave", "local")])
def test_a_copy_of_the_cookie_is_refused_after_the_logout(
    registry: RegistryProcess, user: str, password: str
) -> None:
    """A directory user's session and an htpasswd user's: once logged out, the same cookie
    sent again (a copy kept elsewhere) opens neither the pages nor the API."""
    ui_client = {"X-ZOT-API-CLIENT": "zot-ui"}
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(c, user, password).status_code == 303
        copied = session_cookie(c)
        assert copied is not None
        with httpx.Client(
            base_url=registry.url, timeout=30, cookies={"ocireg_session": copied}
        ) as other:
            assert other.get("/", follow_redirects=False).status_code == 200
            assert other.get("/v2/_catalog", headers=ui_client).status_code == 200
            assert c.post("/ui/logout", follow_redirects=False).status_code == 303
            r = other.get("/", follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, "/ui/login?next=%2F")
            assert other.get("/v2/_catalog", headers=ui_client).status_code == 401
