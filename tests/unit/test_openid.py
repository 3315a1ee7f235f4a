"""`http.auth.openid` read as zot's keys, and where a login may send the browser after."""

from __future__ import annotations

from typing import Any

import pytest

from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.ui.openid import safe_callback

ISSUER = "https://sso.example"


def openid(http: dict[str, Any] | None = None, **provider: Any) -> Any:
    auth = {"openid": {"providers": {"oidc": provider}}}
    return build_config(
        {"storage": {"rootDirectory": "/r"}, "http": {"auth": auth, **(http or {})}}
    )


def test_a_provider_as_zot_writes_it() -> None:
    config = openid(
        {"externalUrl": "https://reg.example/"},
        Name="SSO",
        Issuer=ISSUER,
        ClientID="id",
        ClientSecret="s",
        Scopes=["email"],
        ClaimMapping={"Username": "preferred_username"},
    )
    settings = config.auth.openid
    assert settings is not None and settings.external_url == "https://reg.example"
    provider = settings.providers["oidc"]
    assert provider.title == "SSO" and provider.scopes == ("openid", "email")
    assert (provider.username_claim, provider.groups_claim) == ("preferred_username", "groups")
    assert config.auth.api_keys is False  # apikey not set
    assert config.auth.enabled


@pytest.mark.parametrize(
    ("provider", "where"),
    [
        ({"clientid": "id"}, "http.auth.openid.providers.oidc.issuer"),
        ({"issuer": ISSUER}, "http.auth.openid.providers.oidc.clientid"),
        ({"issuer": "sso.example", "clientid": "id"}, "http.auth.openid.providers.oidc.issuer"),
        ({"issuer": ISSUER, "clientid": "id", "bogus": 1}, "http.auth.openid.providers.oidc.bogus"),
    ],
)
def test_a_provider_without_issuer_or_client_is_an_error(
    provider: dict[str, Any], where: str
) -> None:
    with pytest.raises(ConfigError) as info:
        openid(**provider)
    assert info.value.path == where


def test_github_and_keypath_are_warned() -> None:
    auth = {
        "openid": {
            "providers": {
                "github": {"clientid": "x"},
                "oidc": {"issuer": ISSUER, "clientid": "id", "keypath": "/k"},
            }
        }
    }
    config = build_config({"storage": {"rootDirectory": "/r"}, "http": {"auth": auth}})
    assert "http.auth.openid.providers.oidc.keypath" in config.warnings
    assert any(w.startswith("http.auth.openid.providers.github") for w in config.warnings)
    assert config.auth.openid is not None and list(config.auth.openid.providers) == ["oidc"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "/"),
        ("/ui/repo/a", "/ui/repo/a"),
        ("/?q=x&n=2", "/?q=x&n=2"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("https://evil.example/", "/"),
        ("relative/path", "/"),
        ("https://zui.example/home", "https://zui.example/home"),
        ("https://ZUI.example:443/x", "https://ZUI.example:443/x"),
        ("http://zui.example/", "/"),  # another scheme, another origin
        ("https://zui.example:99999/", "/"),
        ("https://[zui.example/", "/"),  # urlsplit: "Invalid IPv6 URL"
    ],
)
def test_callback_ui_is_a_local_path_or_an_allowed_origin(value: str, expected: str) -> None:
    assert safe_callback(value, ("https://zui.example",)) == expected


def test_without_the_web_pages_there_is_nowhere_to_log_in() -> None:
    config = openid(issuer=ISSUER, clientid="id")
    assert any(n.startswith("http.auth.openid: no logins") for n in config.notices)
