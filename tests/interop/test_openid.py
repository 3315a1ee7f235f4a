"""The same `http.auth.openid` login given to zot and to ocireg, against one real OpenID
provider (oidc-provider-mock, tests/support/oidc.py), driven as a browser would be with
httpx: the login redirect, the provider's form posted for a user, the callback, then the
API with the session cookie and zot's UI header, an API key made with it, pushes and pulls
with that key, and the logout.

Where the two agree the test asserts one answer for both; where they differ on purpose
(docs/auth.md, "OpenID Connect") it asserts each side's own:
- the login: zot (zitadel's relying party) sends no nonce, and PKCE only for a client
  without a secret; ocireg sends both always;
- the callback: zot answers 302 to `callback_ui`, ocireg a 200 page that moves on to it
  (a redirect would not carry its SameSite=Strict cookie); both end up at the same place;
- a callback that proves no login: zot answers 401 and a line of text, ocireg an error
  page, 400 or 403; neither gives a session;
- the logout's `endSessionUrl` brings the browser back to zot's UI page `/login`, to
  ocireg's `/ui/login`.

zot's login cookie `state` is Secure even over plain HTTP; browsers send Secure cookies to
http://127.0.0.1 (loopback is a secure context), httpx does not unless told so
(`_loopback_is_secure`)."""

from __future__ import annotations

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
from tests.support.server import RegistryProcess
from tests.support.zot import zot_or_ocireg
from tests.ui.conftest import UI

pytestmark = pytest.mark.slow
CALLBACK = "/zot/auth/callback/oidc"


def _loopback_is_secure(c: httpx.Client) -> None:
    """A browser's rule: Secure cookies go to http://127.0.0.1 too (httpx keeps them back)."""
    for cookie in c.cookies.jar:
        if cookie.domain == "127.0.0.1":
            cookie.secure = False


def config(workdir: Path, issuer: str) -> dict[str, Any]:
    # ocireg serves the logins with its pages; zot wants search with ui (this zot binary
    # has neither, and warns, but serves the logins)
    cfg = openid_config(workdir, issuer, extensions=UI)
    cfg["http"]["externalUrl"] = f"http://127.0.0.1:{cfg['http']['port']}"
    return cfg


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_oidc_with_users(tmp_path_factory.mktemp("oidc")) as server:
        yield server


@pytest.fixture(scope="module", params=["zot", "ocireg"])
def registry(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider: OidcProvider,
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp(request.param)
    proc = zot_or_ocireg(request.param, workdir, config(workdir, provider.issuer))
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, auth=("root", "root-pw"), timeout=30) as root:
            for repo in ("devs/app", "ops/tool", "secret/x"):
                assert push_small_image(root, repo, "v1")[0].status_code == 201
        yield proc
    finally:
        proc.stop()


def _kind(registry: RegistryProcess) -> str:
    return "zot" if registry.name == "zot" else "ocireg"


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def log_in(
    registry: RegistryProcess, provider: OidcProvider, c: httpx.Client, sub: str, callback_ui: str
) -> str:
    """The whole login in `c`; the path the browser ends up at, as each registry sends it
    there (zot: a redirect; ocireg: a page with a link it follows by itself)."""
    query = urlencode({"provider": "oidc", "callback_ui": callback_ui})
    r = c.get(f"/zot/auth/login?{query}")
    assert r.status_code == 302, r.text
    _loopback_is_secure(c)
    back = provider.authorize(r.headers["location"], sub)
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith(f"{registry.url}{CALLBACK}?")
    r = c.get(back.headers["location"])
    if _kind(registry) == "zot":
        assert r.status_code == 302, r.text
        assert c.cookies.get("session", path="/")
        return str(r.headers["location"])
    assert r.status_code == 200, r.text
    assert c.cookies.get("ocireg_session", path="/")
    found = re.search(r'<a id="continue" href="([^"]*)"', r.text)
    assert found is not None, r.text
    return found.group(1).replace("&amp;", "&")


def test_the_login_redirect(registry: RegistryProcess, provider: OidcProvider) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        r = c.get("/zot/auth/login", params={"provider": "oidc", "callback_ui": "/x"})
    assert r.status_code == 302
    url = r.headers["location"]
    assert url.startswith(f"{provider.issuer}/oauth2/authorize?")
    query = _query(url)
    assert {k: query[k] for k in ("client_id", "response_type", "scope", "redirect_uri")} == {
        "client_id": "ocireg",
        "response_type": "code",
        "scope": "openid email groups",
        "redirect_uri": f"{registry.url}{CALLBACK}",  # http.externalUrl's
    }
    assert len(query["state"]) >= 32
    hardening = {"nonce", "code_challenge", "code_challenge_method"} & set(query)
    if _kind(registry) == "zot":  # zitadel: no nonce; PKCE only without a client secret
        assert hardening == set()
    else:
        assert hardening == {"nonce", "code_challenge", "code_challenge_method"}
        assert query["code_challenge_method"] == "S256"


@pytest.mark.parametrize(
    ("callback_ui", "lands"), [("/x", "/x"), ("//evil.example/x", "/"), ("/a?b=c", "/a?b=c")]
)
def test_the_login_ends_where_callback_ui_says(
    registry: RegistryProcess, provider: OidcProvider, callback_ui: str, lands: str
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert log_in(registry, provider, c, ALICE, callback_ui) == lands


def test_a_session_reads_what_its_groups_may(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    for sub, repos in ((ALICE, ["devs/app"]), (BOB, ["ops/tool"])):
        with httpx.Client(base_url=registry.url, timeout=30) as c:
            log_in(registry, provider, c, sub, "/x")
            r = c.get("/v2/_catalog", headers=UI_CLIENT)
            assert (r.status_code, r.json()) == (200, {"repositories": repos})
            # the session is read only with zot's UI header
            assert c.get("/v2/_catalog").status_code == 401
            assert c.get("/v2/secret/x/manifests/v1", headers=UI_CLIENT).status_code == 403


def test_an_api_key_made_with_the_session(
    registry: RegistryProcess, provider: OidcProvider
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(registry, provider, c, ALICE, "/x")
        r = c.post("/zot/auth/apikey", json={"label": "ci"}, headers=UI_CLIENT)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["apiKey"].startswith("zak_") and created["label"] == "ci"
        listed = c.get("/zot/auth/apikey", headers=UI_CLIENT).json()["apiKeys"]
        assert created["uuid"] in [k["uuid"] for k in listed]
    repo = f"devs/{_kind(registry)}-key"
    with httpx.Client(base_url=registry.url, auth=(ALICE, created["apiKey"]), timeout=30) as api:
        assert push_small_image(api, repo, "v1")[0].status_code == 201
        assert api.get(f"/v2/{repo}/manifests/v1").status_code == 200
        assert repo in api.get("/v2/_catalog").json()["repositories"]
        assert api.get("/v2/ops/tool/manifests/v1").status_code == 403
        r = api.post("/v2/ops/new/blobs/uploads/")  # only ops may read ops/, none push
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
    wrong = httpx.BasicAuth(BOB, created["apiKey"])  # another user's name with the key
    assert httpx.get(f"{registry.url}/v2/", auth=wrong, timeout=30).status_code == 401


def test_logout(registry: RegistryProcess, provider: OidcProvider) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        log_in(registry, provider, c, ALICE, "/x")
        assert c.get("/v2/_catalog", headers=UI_CLIENT).status_code == 200
        r = c.post("/zot/auth/logout", headers=UI_CLIENT)
        assert r.status_code == 200, r.text
        # the provider's RP-initiated logout, back to each one's login page
        login_page = "/login" if _kind(registry) == "zot" else "/ui/login"
        assert r.json() == {
            "endSessionUrl": f"{provider.issuer}/oauth2/end_session?"
            + urlencode(
                {"client_id": "ocireg", "post_logout_redirect_uri": registry.url + login_page}
            )
        }
        assert c.get("/v2/_catalog", headers=UI_CLIENT).status_code == 401
    # without a session there is nothing to end at the provider
    r = httpx.post(f"{registry.url}/zot/auth/logout", headers=UI_CLIENT, timeout=30)
    assert (r.status_code, r.json()) == (200, {})


def test_a_login_without_a_provider_it_knows(registry: RegistryProcess) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        assert c.get("/zot/auth/login", params={"provider": "github"}).status_code == 400
        assert c.get("/zot/auth/login").status_code == 400
        assert c.get("/zot/auth/callback/nope").status_code == 404


# A callback that does not prove a login: (zot, ocireg) statuses. zot answers 401 with a line
# of text for each; ocireg an error page, 400 for a login it did not start (or a state not
# its own), 403 for what the provider refused or a code that does not verify.
FAILED_CALLBACKS = {
    "no login started": (401, 400),
    "forged state": (401, 400),
    "forged code": (401, 403),
    "refused at the provider": (401, 403),
}


@pytest.mark.parametrize("case", FAILED_CALLBACKS)
def test_a_callback_that_proves_nothing_gives_no_session(
    registry: RegistryProcess, provider: OidcProvider, case: str
) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        r = c.get("/zot/auth/login", params={"provider": "oidc", "callback_ui": "/x"})
        _loopback_is_secure(c)
        if case == "refused at the provider":
            url = httpx.post(r.headers["location"], data={"action": "deny"}, timeout=10)
            back = url.headers["location"]
            assert "error=access_denied" in back
        else:
            back = provider.authorize(r.headers["location"], ALICE).headers["location"]
        if case == "no login started":
            c.cookies.clear()
        elif case.startswith("forged"):
            name = case.removeprefix("forged ")
            back = re.sub(rf"\b{name}=[^&]+", f"{name}=forged", back)
        r = c.get(back)
        zot, ours = FAILED_CALLBACKS[case]
        assert r.status_code == (zot if _kind(registry) == "zot" else ours), r.text
        assert "location" not in r.headers
        assert c.get("/v2/_catalog", headers=UI_CLIENT).status_code == 401
