"""zot's `mgmt` extension (`GET /v2/_zot/ext/mgmt`, api/mgmt.py): the login options zui
draws its login page from and `zli server info` prints, open to anyone, routed with search,
against real server processes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import write_htpasswd
from tests.graphql.conftest import SEARCH, SEARCH_ON, UI_ON
from tests.support.oci import assert_error
from tests.support.server import base_config, running_registry

MGMT = "/v2/_zot/ext/mgmt"


def test_listed_beside_search_and_open(client: httpx.Client) -> None:
    """Without `http.auth` the answer has no `auth`, as zot's."""
    r = client.get("/v2/_oci/ext/discover")
    assert r.json()["extensions"][0]["endpoints"] == [SEARCH, MGMT]
    r = client.get(MGMT)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["distSpecVersion"] == "1.1.1"
    assert answer["releaseTag"].startswith("ocireg-")
    assert answer["binaryType"] == "-search-mgmt"
    assert answer["http"] == {}
    assert client.head(MGMT).status_code == 200
    assert_error(client.post(MGMT, content=b"{}"), 405, "UNSUPPORTED")


def _started(
    tmp_path: Path, auth: dict[str, Any], extensions: dict[str, Any] | None = None, **http: Any
) -> Any:
    cfg = base_config(tmp_path / "root", workers=1, extensions=extensions or SEARCH_ON)
    cfg["http"].update({"auth": auth, **http})
    return running_registry(tmp_path, cfg, name="mgmt")


def test_logins_named_and_nothing_secret(tmp_path: Path) -> None:
    """Basic logins appear as `htpasswd: {}` (the file's path is not told), the OpenID
    providers (with the web pages, which serve their logins) with their display names, API
    keys as `apikey`; anyone may ask, with no credentials or wrong ones, while the API
    behind the same server asks for them."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", {"alice": "alice-pw"})
    issuer = "http://127.0.0.1:9/never-asked"  # only a login would ask it anything
    openid = {
        "providers": {
            "oidc": {"name": "Corporate SSO", "issuer": issuer, "clientid": "c"},
            "gitlab": {"issuer": issuer, "clientid": "g"},
        }
    }
    auth = {"htpasswd": {"path": str(htpasswd)}, "openid": openid, "apikey": True}
    with _started(tmp_path, auth, UI_ON, externalUrl="http://127.0.0.1") as registry:
        wrong = {"authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
        for headers in ({}, wrong):
            r = httpx.get(registry.url + MGMT, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["http"] == {
                "auth": {
                    "htpasswd": {},
                    "openid": {"providers": {"oidc": {"name": "Corporate SSO"}, "gitlab": {}}},
                    "apikey": True,
                }
            }
            assert str(htpasswd) not in r.text and issuer not in r.text
        assert_error(httpx.get(registry.url + "/v2/_catalog", timeout=30), 401, "UNAUTHORIZED")


def test_no_openid_providers_without_the_web_pages(tmp_path: Path) -> None:
    """The OpenID logins are served with the web pages (docs/auth.md): with `extensions.ui`
    off there is no `/zot/auth/login`, so no provider is offered."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", {"alice": "alice-pw"})
    provider = {"issuer": "http://127.0.0.1:9/never-asked", "clientid": "c"}
    auth = {"htpasswd": {"path": str(htpasswd)}, "openid": {"providers": {"oidc": provider}}}
    with _started(tmp_path, auth, externalUrl="http://127.0.0.1") as registry:
        r = httpx.get(registry.url + MGMT, timeout=30)
        assert r.json()["http"] == {"auth": {"htpasswd": {}}}
        login = httpx.get(registry.url + "/zot/auth/login?provider=oidc", timeout=30)
        assert login.status_code == 404


def test_bearer_realm_and_service(tmp_path: Path) -> None:
    """A token server's realm and service, which a client needs to fetch a token."""
    bearer = {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "oidc": [{"issuer": "http://127.0.0.1:9/never-asked", "audiences": ["ocireg"]}],
    }
    with _started(tmp_path, {"bearer": bearer}) as registry:
        r = httpx.get(registry.url + MGMT, timeout=30)
        assert r.json()["http"] == {
            "auth": {
                "bearer": {"realm": "https://auth.example/token", "service": "registry.example"}
            }
        }


@pytest.mark.parametrize("enabled", [True, False])
def test_the_mgmt_key_changes_nothing(tmp_path: Path, enabled: bool) -> None:
    """zot's `extensions.mgmt` is read and ignored: the endpoint follows search."""
    cfg = base_config(tmp_path / "root", workers=1, extensions={"mgmt": {"enable": enabled}})
    with running_registry(tmp_path, cfg, name="mgmt") as registry:
        assert_error(httpx.get(registry.url + MGMT, timeout=30), 404, "NOT_FOUND")
