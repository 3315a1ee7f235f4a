"""http.auth.bearer: the Docker/OCI token flow against a token server written here (PyJWT,
a key and certificate made with cryptography, served on a loopback port). The registry
names the scope each request needs; the token's `access` claim decides."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.auth.conftest import (
    SERVICE,
    TokenServer,
    basic,
    parse_challenge,
    start_registry,
)
from tests.support.oci import (
    assert_error,
    manifest_path,
    push_image,
    random_blob,
    uploads_path,
)
from tests.support.pki import TestCA
from tests.support.server import RegistryProcess


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RegistryProcess]:
    bearer = {"realm": token_server.realm, "service": SERVICE, "cert": str(token_server.files.cert)}
    with start_registry(tmp_path_factory.mktemp("bearer"), {"auth": {"bearer": bearer}}) as proc:
        yield proc


class TokenAuth(httpx.Auth):
    """What registry clients do: on a Bearer challenge, ask the realm for a token for the
    challenged scope (with the user's Basic credentials), then retry with it."""

    requires_request_body = True
    requires_response_body = True

    def __init__(self, user: str) -> None:
        self.user = user
        self.tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers["www-authenticate"])
        assert scheme == "bearer", response.headers
        token_request = httpx.Request(
            "GET",
            params["realm"],
            params={"service": params["service"], "scope": params.get("scope", "")},
        )
        # httpx's own Basic auth sets the header on the first step of its flow.
        token_response = yield next(basic(self.user).sync_auth_flow(token_request))
        assert token_response.status_code == 200, token_response.text
        token = token_response.json()["token"]
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def token_client(registry: RegistryProcess, user: str) -> httpx.Client:
    return httpx.Client(base_url=registry.url, timeout=30, auth=TokenAuth(user))


def with_token(registry: RegistryProcess, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=registry.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )


def challenge_of(r: httpx.Response) -> dict[str, str]:
    assert_error(r, 401, "UNAUTHORIZED")
    scheme, params = parse_challenge(r.headers["www-authenticate"])
    assert scheme == "bearer"
    return params


def unique(prefix: str = "tok") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def test_ping_challenge_names_realm_and_service(
    registry: RegistryProcess, token_server: TokenServer
) -> None:
    params = challenge_of(httpx.get(f"{registry.url}/v2/"))
    assert params["realm"] == token_server.realm
    assert params["service"] == SERVICE
    assert "scope" not in params


@pytest.mark.parametrize(
    ("method", "suffix", "actions"),
    [
        ("GET", "/manifests/v1", "pull"),
        ("HEAD", "/blobs/sha256:" + "0" * 64, "pull"),
        ("GET", "/tags/list", "pull"),
        ("POST", "/blobs/uploads/", "pull,push"),
        ("PUT", "/manifests/v1", "pull,push"),
        ("DELETE", "/manifests/v1", "delete"),
    ],
)
def test_challenge_names_the_scope_the_request_needs(
    registry: RegistryProcess, method: str, suffix: str, actions: str
) -> None:
    repo = unique()
    r = httpx.request(method, f"{registry.url}/v2/{repo}{suffix}")
    if method == "HEAD":  # no body: status and header only
        assert r.status_code == 401
        _, params = parse_challenge(r.headers["www-authenticate"])
    else:
        params = challenge_of(r)
    assert params["scope"] == f"repository:{repo}:{actions}"


def test_catalog_challenge_and_grant(registry: RegistryProcess, token_server: TokenServer) -> None:
    assert challenge_of(httpx.get(f"{registry.url}/v2/_catalog"))["scope"] == "registry:catalog:*"
    repo = unique()
    token_server.grants["alice"] = {repo: ["pull", "push"], "catalog": ["*"]}
    with token_client(registry, "alice") as alice:
        push_image(alice, repo, "v1")
        r = alice.get("/v2/_catalog")
        assert r.status_code == 200, r.text
        assert repo in r.json()["repositories"]


def test_push_and_pull_through_the_token_flow(
    registry: RegistryProcess, token_server: TokenServer
) -> None:
    repo = unique()
    token_server.grants["bob"] = {repo: ["pull", "push", "delete"]}
    token_server.grants["carol"] = {repo: ["pull"]}
    with token_client(registry, "bob") as bob:
        image = push_image(bob, repo, "v1")
        assert bob.get(manifest_path(repo, "v1")).content == image.manifest
    with token_client(registry, "carol") as carol:
        assert carol.get(manifest_path(repo, "v1")).content == image.manifest
        # carol's token server grants no push: the retry still lacks the scope.
        params = challenge_of(carol.post(uploads_path(repo)))
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == f"repository:{repo}:pull,push"
    with token_client(registry, "bob") as bob:
        assert bob.delete(manifest_path(repo, "v1")).status_code == 202


def test_token_for_another_repository_is_insufficient_scope(
    registry: RegistryProcess, token_server: TokenServer
) -> None:
    mine, other = unique(), unique()
    token = token_server.mint("alice", [{"type": "repository", "name": mine, "actions": ["pull"]}])
    with with_token(registry, token) as client:
        assert_error(client.get(f"/v2/{mine}/tags/list"), 404, "NAME_UNKNOWN")  # allowed
        params = challenge_of(client.get(f"/v2/{other}/tags/list"))
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == f"repository:{other}:pull"
        params = challenge_of(client.post(uploads_path(mine)))
        assert params["scope"] == f"repository:{mine}:pull,push"
        params = challenge_of(client.get("/v2/_catalog"))
        assert params["scope"] == "registry:catalog:*"


def test_mount_needs_pull_on_the_source(
    registry: RegistryProcess, token_server: TokenServer
) -> None:
    source, target = unique(), unique()
    _, digest = random_blob()
    grant = [{"type": "repository", "name": target, "actions": ["pull", "push"]}]
    with with_token(registry, token_server.mint("alice", grant)) as client:
        r = client.post(uploads_path(target), params={"mount": digest, "from": source})
        assert challenge_of(r)["error"] == "insufficient_scope"


def test_expired_token_is_invalid(registry: RegistryProcess, token_server: TokenServer) -> None:
    repo = unique()
    grant = [{"type": "repository", "name": repo, "actions": ["pull"]}]
    with with_token(registry, token_server.mint("alice", grant, lifetime=-120)) as client:
        r = client.get(f"/v2/{repo}/tags/list")
    params = challenge_of(r)
    assert params["error"] == "invalid_token"
    assert params["scope"] == f"repository:{repo}:pull"
    assert "expired" in r.json()["errors"][0]["detail"]["reason"]


def test_token_signed_by_another_key_is_invalid(
    registry: RegistryProcess, token_server: TokenServer, tmp_path: Path
) -> None:
    impostor = TestCA(tmp_path / "impostor").issue("signer", "token-signer", server=False)
    key = serialization.load_pem_private_key(impostor.key.read_bytes(), None)
    repo = unique()
    grant = [{"type": "repository", "name": repo, "actions": ["pull"]}]
    with with_token(registry, token_server.mint("alice", grant, key=key)) as client:
        assert challenge_of(client.get(f"/v2/{repo}/tags/list"))["error"] == "invalid_token"


@pytest.mark.parametrize(
    "claims",
    [{"aud": "another-service"}, {"nbf": 4102444800}, {"access": "everything"}],
    ids=["wrong-audience", "not-yet-valid", "malformed-access"],
)
def test_unacceptable_claims_are_invalid(
    registry: RegistryProcess, token_server: TokenServer, claims: dict[str, object]
) -> None:
    repo = unique()
    grant: object = [{"type": "repository", "name": repo, "actions": ["pull"]}]
    if "access" in claims:
        grant = claims.pop("access")
    token = token_server.mint("alice", grant, **claims)  # type: ignore[arg-type]
    with with_token(registry, token) as client:
        assert challenge_of(client.get(f"/v2/{repo}/tags/list"))["error"] == "invalid_token"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "Bearer"])
def test_garbage_tokens_are_invalid(registry: RegistryProcess, token: str) -> None:
    with with_token(registry, token) as client:
        assert_error(client.get(f"/v2/{unique()}/tags/list"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("header", [b"Bearer \xe9.\xe9.\xe9", b"Basic \xe9", b"\xe9"])
def test_authorization_past_ascii_is_invalid(registry: RegistryProcess, header: bytes) -> None:
    r = httpx.get(f"{registry.url}/v2/{unique()}/tags/list", headers={"Authorization": header})
    assert_error(r, 401, "UNAUTHORIZED")


def test_unsigned_token_is_refused(registry: RegistryProcess) -> None:
    repo = unique()
    token = jwt.encode(
        {
            "sub": "alice",
            "exp": 4102444800,
            "access": [{"type": "repository", "name": repo, "actions": ["pull"]}],
        },
        None,
        algorithm="none",
    )
    with with_token(registry, token) as client:
        assert challenge_of(client.get(f"/v2/{repo}/tags/list"))["error"] == "invalid_token"


def test_basic_credentials_get_the_bearer_challenge(registry: RegistryProcess) -> None:
    repo = unique()
    r = httpx.get(f"{registry.url}/v2/{repo}/tags/list", auth=basic("alice"))
    assert challenge_of(r)["scope"] == f"repository:{repo}:pull"
