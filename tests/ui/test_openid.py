"""`http.auth.openid`: zot's OpenID Connect login through a real ocireg and a real OpenID
provider (oidc-provider-mock, its own process: tests/support/oidc.py), driven over HTTP as
a browser would be: the login redirect, the provider's authorization form posted for a
user, the callback, then the pages and the API with the session.

alice is in the provider's group devs, bob in ops; devs may read and push devs/, ops may
read ops/, only root (htpasswd) secret/."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.support.oci import push_small_image
from tests.support.oidc import (
    ALICE,
    BOB,
    UI_CLIENT,
    OidcProvider,
    openid_config,
    running_oidc_with_users,
)
from tests.support.rawhttp import read_response, start_request
from tests.support.server import RegistryProcess, free_port, running_registry
from tests.ui.conftest import UI, repo_names

REPOS = ["devs/app", "ops/tool", "secret/x"]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_oidc_with_users(tmp_path_factory.mktemp("oidc")) as server:
        yield server


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, provider: OidcProvider
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("ui-openid")
    with running_registry(
        workdir, openid_config(workdir, provider.issuer, workers=1, extensions=UI)
    ) as proc:
        with httpx.Client(base_url=proc.url, auth=("root", "root-pw"), timeout=30) as root:
            for repo in REPOS:
                assert push_small_image(root, repo, "v1")[0].status_code == 201
        yield proc


def start_login(c: httpx.Client, callback_ui: str = "/") -> httpx.Response:
    query = urlencode({"provider": "oidc", "callback_ui": callback_ui})
    return c.get(f"/zot/auth/login?{query}", follow_redirects=False)


def callback_url(provider: OidcProvider, c: httpx.Client, sub: str, callback_ui: str = "/") -> str:
    """A login started in `c` and authorized at the provider for `sub`: where the provider
    sends the browser back to."""
    r = start_login(c, callback_ui)
    assert r.status_code == 302, r.text
    back = provider.authorize(r.headers["location"], sub)
    assert back.status_code == 302, back.text
    return str(back.headers["location"])


def log_in(provider: OidcProvider, c: httpx.Client, sub: str, callback_ui: str = "/") -> str:
    """The whole login; where the page after it leads."""
    r = c.get(callback_url(provider, c, sub, callback_ui))
    assert r.status_code == 200, r.text
    found = re.search(r'<a id="continue" href="([^"]*)"', r.text)
    assert found is not None and c.cookies.get("ocireg_session", path="/")
    return found.group(1).replace("&amp;", "&")


def listed(c: httpx.Client) -> list[str]:
    r = c.get("/")
    assert r.status_code == 200, r.text
    return re.findall(r'<td><a href="/ui/repo/([^"]+)">', r.text)


def test_the_login_page_offers_the_provider(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/ui/login?next=/ui/repo/devs/app", timeout=30)
    assert r.status_code == 200
    assert "Log in with Corporate SSO" in r.text
    assert "/zot/auth/login?provider=oidc&amp;callback_ui=/ui/repo/devs/app" in r.text
    assert 'name="password"' in r.text  # htpasswd users still log in with the form


def test_the_login_goes_to_the_provider_with_state_nonce_and_pkce(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        r = start_login(c)
        assert r.status_code == 302
        url = urlsplit(r.headers["location"])
        assert f"{url.scheme}://{url.netloc}" == provider.issuer
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert query["client_id"] == "ocireg" and query["response_type"] == "code"
        # zot's redirect URI: the configured address and port (no http.externalUrl here)
        assert query["redirect_uri"] == f"{registry.url}/zot/auth/callback/oidc"
        assert query["scope"] == "openid email groups"
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert len(query["state"]) > 20 and len(query["nonce"]) > 20
        assert "ocireg_openid_login" in r.headers["set-cookie"]
        assert "path=/zot/auth/callback" in r.headers["set-cookie"].lower()


def test_a_user_logs_in_and_sees_what_their_groups_may_read(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(provider, c, ALICE, "/ui/repo/devs/app") == "/ui/repo/devs/app"
        assert listed(c) == ["devs/app"]
        assert ALICE in c.get("/").text
        assert c.get("/ui/repo/devs/app").status_code == 200
        assert c.get("/ui/repo/ops/tool").status_code == 404
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(provider, c, BOB)
        assert listed(c) == ["ops/tool"]


def test_the_page_after_the_login_names_the_user(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        r = c.get(callback_url(provider, c, ALICE))
        assert r.status_code == 200, r.text
        assert f"You are logged in as {ALICE}." in r.text
        assert f'<span class="who">{ALICE}</span>' in r.text  # the header's user


def test_a_forged_session_cookie_is_nobody(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(provider, c, BOB)
        cookie = c.cookies.get("ocireg_session", path="/")
        assert cookie is not None and cookie.startswith("o.")
    payload, _, mac = cookie.removeprefix("o.").partition(".")
    # the same payload with groups of one's choosing, under the old MAC
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["g"] = ["devs", "ops"]
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        c.cookies.set("ocireg_session", f"o.{forged}.{mac}")
        r = c.get("/", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/ui/login?next=%2F")


def test_a_cookie_with_bytes_over_0x7f_is_nobody(registry: RegistryProcess) -> None:
    """A session cookie whose MAC is not ASCII (a header is bytes; read as latin-1) is a
    forgery: the login page, or a 401 on the API, never a 500."""
    port = int(urlsplit(registry.url).port or 0)
    payload = base64.urlsafe_b64encode(b'{"u":"root","e":9999999999,"g":[],"p":"oidc"}')
    for cookie in ("o." + payload.decode().rstrip("="), "eyJ1Ijoicm9vdCIsImUiOjk5OTk5OTk5OTl9"):
        headers = {"Cookie": f"ocireg_session={cookie}.\u00e9", **UI_CLIENT}
        for path, status in (("/", 303), ("/v2/_catalog", 401)):
            with start_request(port, "GET", path, headers) as sock:
                assert read_response(sock).status == status, (cookie, path)


@pytest.mark.parametrize(
    "callback_ui",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "https://[evil.example/",  # not a URL at all (urlsplit raises): no 500
    ],
)
def test_callback_ui_may_not_lead_elsewhere(
    registry: RegistryProcess, provider: OidcProvider, callback_ui: str
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(provider, c, ALICE, callback_ui) == "/"


def test_a_tampered_state_or_code_is_refused(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        url = callback_url(provider, c, ALICE)
        r = c.get(re.sub(r"state=[^&]+", "state=forged", url))
        assert r.status_code == 400 and "not for this login" in r.text
        assert c.cookies.get("ocireg_session", path="/") is None
    with httpx.Client(base_url=registry.url, timeout=30) as c:  # not ASCII: no 500
        url = callback_url(provider, c, ALICE)
        r = c.get(re.sub(r"state=[^&]+", "state=%C3%A9", url))
        assert r.status_code == 400 and "not for this login" in r.text
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        url = callback_url(provider, c, ALICE)
        r = c.get(re.sub(r"code=[^&]+", "code=forged", url))
        assert r.status_code == 403 and "could not be verified" in r.text
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        url = callback_url(provider, c, ALICE)
    with httpx.Client(base_url=registry.url, timeout=30) as other:  # not started here
        r = other.get(url)
        assert r.status_code == 400 and "not started here" in r.text


def test_a_code_issued_for_another_login_fails_the_nonce(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    """An attacker's code (their login's nonce) slipped into the victim's login, whose state
    the attacker knows: the ID token's nonce is not the victim's."""
    with httpx.Client(base_url=registry.url, timeout=30) as attacker:
        stolen = parse_qs(urlsplit(callback_url(provider, attacker, BOB)).query)["code"][0]
    with httpx.Client(base_url=registry.url, timeout=30) as victim:
        url = callback_url(provider, victim, ALICE)
        r = victim.get(re.sub(r"code=[^&]+", f"code={stolen}", url))
        assert r.status_code == 403 and "could not be verified" in r.text
        assert victim.cookies.get("ocireg_session", path="/") is None


def test_a_refusal_at_the_provider_is_a_page(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        r = start_login(c)
        back = httpx.post(r.headers["location"], data={"action": "deny"}, timeout=10)
        assert back.status_code == 302 and "error=access_denied" in back.headers["location"]
        r = c.get(back.headers["location"])
        assert r.status_code == 403 and "did not log you in" in r.text


def test_an_unknown_provider_is_a_bad_request(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/zot/auth/login?provider=github", timeout=30)
    assert r.status_code == 400 and "no such login provider" in r.text
    assert httpx.get(f"{registry.url}/zot/auth/callback/nope", timeout=30).status_code == 404


def test_an_api_key_made_with_the_session_pushes_with_the_tokens_groups(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(provider, c, ALICE)
        # without zot's UI header the cookie is not read: no cross-site request rides on it
        assert c.post("/zot/auth/apikey", json={"label": "ci"}).status_code == 401
        r = c.post("/zot/auth/apikey", json={"label": "ci"}, headers=UI_CLIENT)
        assert r.status_code == 201, r.text
        key = r.json()["apiKey"]
        listed_keys = c.get("/zot/auth/apikey", headers=UI_CLIENT).json()["apiKeys"]
        assert [k["label"] for k in listed_keys] == ["ci"]
    with httpx.Client(base_url=registry.url, auth=(ALICE, key), timeout=30) as api:
        assert push_small_image(api, "devs/new", "v1")[0].status_code == 201
        assert api.get("/v2/devs/new/manifests/v1").status_code == 200
        assert api.get("/v2/ops/tool/manifests/v1").status_code == 403
        assert api.post("/v2/ops/new/blobs/uploads/").status_code == 403  # ops may not push


def test_logout_ends_the_session(registry: RegistryProcess, provider: OidcProvider) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(provider, c, ALICE)
        r = c.post("/zot/auth/logout")
        # zot's answer: the provider's RP-initiated logout, to come back to the login page
        login_page = f"{registry.url}/ui/login"
        back = urlencode({"client_id": "ocireg", "post_logout_redirect_uri": login_page})
        end = f"{provider.issuer}/oauth2/end_session?{back}"
        assert (r.status_code, r.json()) == (200, {"endSessionUrl": end})
        assert c.cookies.get("ocireg_session", path="/") is None
        assert c.get("/", follow_redirects=False).status_code == 303
        r = c.post("/zot/auth/logout")  # no session now: nothing to end at the provider
        assert (r.status_code, r.json()) == (200, {})
        r = httpx.get(end, follow_redirects=False, timeout=10)  # the provider takes it
        assert r.status_code == 200 and "end_session" in r.text


def test_a_copy_of_the_cookie_is_refused_after_the_logout(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    """The session is ended where it is checked, not only deleted from the browser: a copy
    of the cookie opens neither the API nor the pages afterwards."""
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(provider, c, ALICE)
        copied = c.cookies.get("ocireg_session", path="/")
        assert copied is not None
        with httpx.Client(
            base_url=registry.url, timeout=30, cookies={"ocireg_session": copied}
        ) as other:
            assert other.get("/v2/_catalog", headers=UI_CLIENT).status_code == 200
            assert c.post("/zot/auth/logout").status_code == 200
            assert other.get("/v2/_catalog", headers=UI_CLIENT).status_code == 401
            assert other.get("/", follow_redirects=False).status_code == 303


def test_a_provider_that_is_down_is_a_503_page(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    cfg = openid_config(tmp_path, nobody, workers=1, extensions=UI)
    with running_registry(tmp_path, cfg) as proc:
        r = httpx.get(f"{proc.url}/zot/auth/login?provider=oidc", timeout=60)
        assert r.status_code == 503
        assert "Corporate SSO did not answer" in r.text


def test_a_user_logs_in_with_a_browser(
    registry: RegistryProcess, provider: OidcProvider, page: Any
) -> None:
    """Chromium through the provider and back: the callback's page moves on by itself, and
    the browser sends the new SameSite=Strict cookie on the page it leads to."""
    page.goto(f"{registry.url}/ui/login?next=/ui/search")
    page.get_by_role("link", name="Log in with Corporate SSO").click()
    page.get_by_placeholder("sub").fill(ALICE)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{registry.url}/ui/search")
    assert page.locator(".who").inner_text() == ALICE
    page.goto(f"{registry.url}/")
    names = repo_names(page)  # devs/new too, once the API key test pushed it
    assert "devs/app" in names and not {"ops/tool", "secret/x"} & set(names)
