"""The workload-identity scenario shared by tests/auth/test_bearer_oidc.py (ocireg alone)
and tests/interop/test_bearer_oidc.py (zot and ocireg side by side): the providers, the
trusted issuers as `http.auth.bearer.oidc` lists them, and the policies naming their users
and groups.

`ci` (mapping: user = `sub`, groups = the `groups` claim; builder and red-builder in ci, of
teams blue and red; reader in readers) and `short` (zot's default mapping, user =
`iss/sub`; its tokens live 2 seconds) are trusted; `stranger` is trusted by nobody.
`blue/**` grants `ci` only under a policy condition on the token's `team` claim
(`req.claims`, as zot fills it for these tokens)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.oidc import OidcProvider, running_oidc

AUDIENCE = "ocireg"
ALL = ["read", "create", "update", "delete"]
REALM = "ocireg-workloads"  # a realm that sends nobody anywhere (the token is sent as is)
BLUE_ONLY = "the blue team's"
BLUE_TEAM = {"expression": 'req.claims.team == "blue"', "message": BLUE_ONLY}


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_oidc(tmp_path_factory.mktemp("oidc-ci")) as provider:
        provider.set_user("builder", groups=["ci"], team="blue")
        provider.set_user("red-builder", groups=["ci"], team="red")
        provider.set_user("reader", groups=["readers"])
        yield provider


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_oidc(tmp_path_factory.mktemp("oidc-short"), token_max_age=2) as provider:
        yield provider


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_oidc(tmp_path_factory.mktemp("oidc-stranger")) as provider:
        yield provider


@pytest.fixture(scope="module")
def silent_issuer() -> Iterator[str]:
    """An issuer whose address takes connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def trusted(ci: OidcProvider, short: OidcProvider) -> list[dict[str, Any]]:
    """`http.auth.bearer.oidc`: the two trusted issuers and their claim mappings."""
    return [
        {
            "issuer": ci.issuer,
            "audiences": [AUDIENCE, "https://registry.example"],
            "claimMapping": {"username": "claims.sub", "groups": "claims.groups"},
        },
        {"issuer": short.issuer, "audiences": [AUDIENCE]},
    ]


def workload_access(short: OidcProvider) -> dict[str, Any]:
    """`http.accessControl`: ci's group, blue's condition, short's deployer, a shared read."""
    return {
        "repositories": {
            "ci/**": {"policies": [{"groups": ["ci"], "actions": ALL}]},
            "blue/**": {
                "policies": [{"groups": ["ci"], "actions": ALL, "conditions": [BLUE_TEAM]}]
            },
            "deploy/**": {"policies": [{"users": [f"{short.issuer}/deployer"], "actions": ALL}]},
            "shared/**": {"defaultPolicy": ["read"]},
        }
    }


def tampered(token: str, **claims: Any) -> str:
    """`token` with its claims changed and its signature kept."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    body = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"
