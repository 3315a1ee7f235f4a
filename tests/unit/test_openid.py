"""`http.auth.openid` read as zot's keys, and where a login may send the browser after."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ocireg.auth.discovery import MAX_ANSWER
from ocireg.auth.openid import OpenIdClient, ProviderDown
from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.settings.openid import OpenIdProvider
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


BACK = "https://reg.example/ui/login"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            f"{ISSUER}/logout",
            f"{ISSUER}/logout?client_id=id&post_logout_redirect_uri=https%3A%2F%2Freg.example"
            "%2Fui%2Flogin",
        ),
        (  # the provider's own parameters kept, ours set, all sorted by name (Go's Encode)
            f"{ISSUER}/logout?ui_locales=en&client_id=old",
            f"{ISSUER}/logout?client_id=id&post_logout_redirect_uri=https%3A%2F%2Freg.example"
            "%2Fui%2Flogin&ui_locales=en",
        ),
        ("", ""),  # none published: zot's logout answers {}
        ("/logout", ""),
        ("javascript:alert(1)", ""),
    ],
)
def test_the_logout_at_the_provider(endpoint: str, expected: str) -> None:
    provider = openid(issuer=ISSUER, clientid="id").auth.openid.providers["oidc"]
    client = OpenIdClient(provider, "https://reg.example/zot/auth/callback/oidc")
    # the provider's discovery document, as if fetched just now
    document = {"issuer": ISSUER, "jwks_uri": "", "end_session_endpoint": endpoint}
    document |= {"authorization_endpoint": "", "token_endpoint": ""}
    client._issuer._document, client._issuer._fetched = document, time.monotonic()
    assert asyncio.run(client.end_session_url(BACK)) == expected


class _InPieces(BaseHTTPRequestHandler):
    """Answers GET /<n> with a JSON object of about n bytes, sent chunked in two pieces a
    moment apart, as a provider's answer may come over a real network."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"issuer": ISSUER, "pad": "p" * int(self.path[1:])}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        half = len(body) // 2
        try:
            for part in (body[:half], body[half:]):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.flush()
                time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading (the answer over the limit)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def in_pieces() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _InPieces)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_that_comes_in_pieces_is_read_whole(in_pieces: str) -> None:
    """The whole answer is read (up to MAX_ANSWER), not only what the first read finds."""

    async def call(size: int) -> tuple[int, dict[str, Any]]:
        provider = OpenIdProvider(name="oidc", issuer=ISSUER, client_id="id")
        client = OpenIdClient(provider, "http://reg.example/zot/auth/callback/oidc")
        try:
            return await client._call("GET", f"{in_pieces}/{size}")
        finally:
            await client.close()

    status, data = asyncio.run(call(20_000))
    assert status == 200 and len(data["pad"]) == 20_000
    with pytest.raises(ProviderDown, match="not a JSON object"):
        asyncio.run(call(MAX_ANSWER + 10))  # over the limit: still refused


def test_the_groups_of_the_id_token_and_the_userinfo_are_joined() -> None:
    """zot joins the groups claim of both (sorted, each once); the user comes from the
    userinfo first, falling back to `email`, then to the ID token."""
    provider = OpenIdProvider(name="oidc", issuer=ISSUER, client_id="id")
    client = OpenIdClient(provider, "http://reg.example/zot/auth/callback/oidc")
    try:
        user = client.user_of(
            {"sub": "1", "email": "a@x", "groups": ["ops", "devs"]},
            {"sub": "1", "email": "b@x", "groups": "devs"},
        )
        assert (user.user, user.groups) == ("b@x", ("devs", "ops"))
        user = client.user_of({"sub": "1", "email": "a@x", "groups": "ops"}, {})
        assert (user.user, user.groups) == ("a@x", ("ops",))
    finally:
        asyncio.run(client.close())
