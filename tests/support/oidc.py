"""A real OpenID provider for tests: oidc-provider-mock (authlib and Flask, served by
uvicorn) as its own process on a free loopback port. Any client id and secret are taken;
a user is whoever the authorization form is posted for, with the claims set beforehand
(`set_user`). And `SigningIssuer`, a small issuer written here that signs whatever a test
asks, with keys it rotates."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.conftest import write_htpasswd
from tests.support.backends import _LoopbackServer
from tests.support.server import base_config, wait_until
from tests.support.threaded import QuietHandler, ThreadedServer
from tests.support.tools import missing

LOG = "oidc.log"

# The OpenID tests' registry (tests/ui/test_openid.py, tests/interop/test_openid.py): alice is
# in the provider's group devs, bob in ops; devs may read and push devs/, ops may read ops/,
# only root (htpasswd) secret/.
ALL = ["read", "create", "update", "delete"]
ACCESS = {
    "repositories": {
        "devs/**": {"policies": [{"groups": ["devs"], "actions": ["read", "create"]}]},
        "ops/**": {"policies": [{"groups": ["ops"], "actions": ["read"]}]},
        "secret/**": {"policies": [{"users": ["root"], "actions": ALL}]},
    },
    "adminPolicy": {"users": ["root"], "actions": ALL},
}
ALICE, BOB = "alice@example.com", "bob@example.com"
UI_CLIENT = {"X-ZOT-API-CLIENT": "zot-ui"}  # zot's header: the session cookie counts with it


def openid_config(workdir: Path, issuer: str, **base: Any) -> dict[str, Any]:
    """`base_config(**base)` with htpasswd (root), API keys, the provider at `issuer` as
    `oidc`, and `ACCESS`."""
    htpasswd = write_htpasswd(workdir / "users.htpasswd", {"root": "root-pw"})
    cfg = base_config(workdir / "root", **base)
    provider = {
        "name": "Corporate SSO",
        "issuer": issuer,
        "clientid": "ocireg",
        "clientsecret": "s3cret",
        "scopes": ["openid", "email", "groups"],
    }
    cfg["http"]["auth"] = {
        "htpasswd": {"path": str(htpasswd)},
        "apikey": True,
        "openid": {"providers": {"oidc": provider}},
    }
    cfg["http"]["accessControl"] = ACCESS
    return cfg


class OidcProvider(_LoopbackServer):
    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, token_max_age: int | None = None) -> OidcProvider:
        """`token_max_age`: seconds its ID tokens live (the provider's default: an hour)."""
        # found, not imported: it would import Flask and authlib into the test process
        if importlib.util.find_spec("oidc_provider_mock") is None:
            missing("the Python module oidc_provider_mock is not installed (the `test` extra)")
        args = [sys.executable, "-m", "oidc_provider_mock", "--port", str(self.port)]
        if token_max_age is not None:
            args += ["--token-max-age", str(token_max_age)]
        self._spawn(args, LOG)
        wait_until(self._ready, timeout=timeout)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited: {self.logs()}")
        try:
            url = f"{self.issuer}/.well-known/openid-configuration"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def set_user(self, sub: str, **claims: Any) -> None:
        """The claims the provider gives `sub` from now on."""
        r = httpx.put(f"{self.issuer}/users/{quote(sub, safe='')}", json=claims, timeout=10)
        assert r.status_code == 204, r.text

    def authorize(self, url: str, sub: str) -> httpx.Response:
        """The provider's authorization form, posted for `sub` (the user's "Authorize")."""
        return httpx.post(url, data={"sub": sub}, timeout=10)

    def id_token(self, sub: str, audience: str) -> str:
        """A real ID token for `sub` with `aud` = `audience`, as a workload gets one: the
        provider's authorization code flow run for the client `audience` (any client id
        is taken), the code traded for tokens."""
        redirect = "http://127.0.0.1/callback"
        query = {
            "client_id": audience,
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "openid",
        }
        r = httpx.post(
            f"{self.issuer}/oauth2/authorize", params=query, data={"sub": sub}, timeout=10
        )
        assert r.status_code == 302, r.text
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": audience,  # in the form: an audience may be a URL, with a colon
            "client_secret": "secret",
        }
        r = httpx.post(f"{self.issuer}/oauth2/token", data=form, timeout=10)
        assert r.status_code == 200, r.text
        token: str = r.json()["id_token"]
        return token

    def logs(self) -> str:
        path = self.workdir / LOG
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_oidc(workdir: Path, token_max_age: int | None = None) -> Iterator[OidcProvider]:
    provider = OidcProvider(workdir)
    try:
        yield provider.start(token_max_age=token_max_age)
    finally:
        provider.stop()


@contextlib.contextmanager
def running_oidc_with_users(workdir: Path) -> Iterator[OidcProvider]:
    """The provider with alice (groups: a list) and bob (one group, as a string)."""
    with running_oidc(workdir) as server:
        server.set_user(ALICE, email=ALICE, groups=["devs"])
        server.set_user(BOB, email=BOB, groups="ops")
        yield server


class SigningIssuer(ThreadedServer):
    """An OpenID issuer written here, for what a real provider will not do on demand: sign
    any claims (no `exp`, a future `nbf`, another `iss`) with keys the test adds, rotates
    and names (or not) by `kid`, and count how often its JWKS is fetched. Discovery and
    JWKS over HTTP on a loopback port, in a thread."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key (RSA), published in that order
        self.jwks_fetches = 0
        # path -> the raw JSON body answered there instead (a hostile or broken issuer)
        self.answers: dict[str, bytes] = {}
        super().__init__(self._handler())

    @property
    def issuer(self) -> str:
        return self.base_url

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, claims: dict[str, Any], kid: str | None, key_of: str | None = None) -> str:
        """`claims` signed (RS256) by the key `key_of` (default: `kid`'s), the header naming
        `kid` (none when None)."""
        key = self.keys[key_of or kid or next(iter(self.keys))]
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(claims, key, algorithm="RS256", headers=headers)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path in outer.answers:
                    self.send_raw(outer.answers[self.path])
                elif self.path == "/.well-known/openid-configuration":
                    self.send_json({"issuer": outer.issuer, "jwks_uri": f"{outer.issuer}/jwks"})
                elif self.path == "/jwks":
                    outer.jwks_fetches += 1
                    keys = [outer._public(kid, key) for kid, key in outer.keys.items()]
                    self.send_json({"keys": keys})
                else:
                    self.send_json({}, 404)

        return Handler

    @staticmethod
    def _public(kid: str, key: Any) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}
