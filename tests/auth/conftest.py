"""Helpers for the auth tests: htpasswd files made with bcrypt, a small token server (the
Docker/OCI token protocol) on a loopback port, and registries started with an auth config."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.clients.conftest import tools  # noqa: F401  (the container-tools fixture)
from tests.support.pki import TestCA
from tests.support.server import RegistryProcess, base_config, running_registry
from tests.support.threaded import QuietHandler, ThreadedServer

PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "dave": "dave-pw",
    "root": "root-pw",
}
SERVICE = "ocireg-test"
ALL = ["read", "create", "update", "delete"]
# The policies of tests/auth/test_policy.py (over HTTP) and tests/unit/test_policy.py
# (decisions in-process). Keys in mixed case on purpose: zot lower-cases every key,
# repository globs included.
ACCESS_CONTROL: dict[str, Any] = {
    "Repositories": {
        "**": {"DefaultPolicy": ["read"]},
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read", "create"]},
        "Team/*": {
            "policies": [
                {"users": ["alice"], "actions": ["read", "create"]},
                {"users": ["bob"], "actions": ALL},
                {"groups": ["Devs"], "actions": ["read"]},
            ],
            "defaultPolicy": [],
        },
        "team/secret": {"policies": [{"users": ["bob"], "actions": ["read"]}]},
    },
    "AdminPolicy": {"users": ["root"], "actions": ALL},
    "Groups": {"Devs": {"Users": ["carol"]}},
}


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    # Cost 5: the file format and the check are bcrypt's, without bcrypt's slowness in tests.
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}"
        for u, p in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_registry(
    workdir: Path, http_extra: Mapping[str, Any], name: str = "auth", workers: int = 1
) -> Any:
    cfg = base_config(workdir / f"{name}-root", workers=workers)
    cfg["http"].update(http_extra)
    return running_registry(workdir, cfg, name=name)


def basic(user: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, PASSWORDS[user])


def client_for(registry: RegistryProcess, user: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=registry.url, timeout=30.0, auth=basic(user) if user else None)


# --- the token server ------------------------------------------------------------------------


class TokenServer(ThreadedServer):
    """Issues JWTs the way a Docker token server does: GET /token?service=&scope=... with the
    user's Basic credentials; the grants come from `self.grants[user][repository]`."""

    def __init__(self, directory: Path) -> None:
        self.ca = TestCA(directory / "token-ca", name="token issuer")
        self.files = self.ca.issue("token-signer", "token-signer", server=False)
        self.key = serialization.load_pem_private_key(self.files.key.read_bytes(), None)
        self.grants: dict[str, dict[str, list[str]]] = {}
        self.requests: list[dict[str, list[str]]] = []
        self.lifetime = 300
        super().__init__(self._handler())

    @property
    def realm(self) -> str:
        return f"{self.base_url}/token"

    def mint(
        self,
        subject: str | None,
        access: list[dict[str, Any]],
        lifetime: int | None = None,
        key: Any = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": "test-token-server",
            "aud": SERVICE,
            "iat": now,
            "nbf": now,
            "exp": now + (self.lifetime if lifetime is None else lifetime),
            "access": access,
            **claims,
        }
        if subject is not None:
            payload["sub"] = subject
        return jwt.encode(payload, key or self.key, algorithm="ES256")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                server.requests.append(query)
                user = _basic_user(self.headers.get("Authorization"))
                if user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    allowed = server.grants.get(user, {}).get(name, [])
                    granted = [a for a in actions.split(",") if a in allowed]
                    access.append({"type": kind, "name": name, "actions": granted})
                token = server.mint(user, access)
                self.send_json({"token": token, "access_token": token, "expires_in": 300})

        return Handler


def _basic_user(header: str | None) -> str | None:
    if not header or not header.lower().startswith("basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user if PASSWORDS.get(user) == password else None


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    with TokenServer(tmp_path_factory.mktemp("tokens")) as server:
        yield server


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    for part in _split_params(rest):
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return scheme.lower(), params


def _split_params(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts
