"""http.auth.bearer.oidc: workload identity. Real ID tokens minted by real OpenID providers
(oidc-provider-mock, own processes: tests/support/oidc.py) are sent as `Authorization:
Bearer <jwt>` to a real ocireg, which verifies them against the issuers' discovery documents
and keys; the claim mapping's user and groups are then authorized by accessControl.

Two trusted issuers: `ci` (mapping: user = `sub`, groups = the `groups` claim) and `short`
(zot's default mapping, user = `iss/sub`; its tokens live 2 seconds). A third provider,
`stranger`, is trusted by nobody. `blue/**` grants `ci` only under a policy condition on
the token's `team` claim (`req.claims`). In a two-member cluster only member 0 trusts `ci`:
the owner authorizes the identity and evaluates the conditions with the claims member 0
forwards."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.conftest import (
    PASSWORDS,
    SERVICE,
    TokenServer,
    basic,
    parse_challenge,
    start_registry,
    write_htpasswd,
)
from tests.auth.workloads import (
    ALL,
    AUDIENCE,
    BLUE_ONLY,
    BLUE_TEAM,
    REALM,
    tampered,
    trusted,
    workload_access,
)
from tests.clients.conftest import Tools, require
from tests.clients.layout import build_image_layout
from tests.support.cluster import cluster_configs, repo_owned_by
from tests.support.oci import assert_error, manifest_path, push_small_image
from tests.support.oidc import OidcProvider, SigningIssuer
from tests.support.server import RegistryProcess, free_port

TOKEN_PATH = "/zot/auth/token"  # zot's token exchange: the challenge's realm here


def workload_config(ci: OidcProvider, short: OidcProvider, port: int = 0) -> dict[str, Any]:
    """`http` of the registry on `port`: both issuers, and policies naming their users and
    groups; the challenge sends clients to the token exchange."""
    return {
        "port": str(port),
        "auth": {
            "bearer": {
                "realm": f"http://127.0.0.1:{port}{TOKEN_PATH}",
                "service": SERVICE,
                "oidc": trusted(ci, short),
            }
        },
        "accessControl": workload_access(short),
    }


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, ci: OidcProvider, short: OidcProvider
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("bearer-oidc")
    http = workload_config(ci, short, free_port())
    with start_registry(workdir, http, name="bearer-oidc") as proc:
        yield proc


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def client(registry: RegistryProcess, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=registry.url, headers=bearer(token) if token else {}, timeout=30)


def assert_refused(r: httpx.Response, error: str | None = "invalid_token") -> dict[str, Any]:
    """A 401 UNAUTHORIZED with the Bearer challenge of the registry (its token exchange,
    or REALM where it has none); its detail."""
    found = assert_error(r, 401, "UNAUTHORIZED")
    scheme, params = parse_challenge(r.headers["www-authenticate"])
    assert scheme == "bearer" and params["service"] == SERVICE
    exchange = str(r.request.url.copy_with(path=TOKEN_PATH, query=None))
    assert params["realm"] in (exchange, REALM)
    assert params.get("error") == error, r.headers["www-authenticate"]
    return found.get("detail") or {}


def test_push_and_pull_with_a_workload_token(ci: OidcProvider, registry: RegistryProcess) -> None:
    with client(registry, ci.id_token("builder", AUDIENCE)) as c:
        pushed, body = push_small_image(c, "ci/app", "v1")
        assert pushed.status_code == 201, pushed.text
        r = c.get(manifest_path("ci/app", "v1"))
        assert r.status_code == 200 and r.content == body
        assert c.get("/v2/").status_code == 200


def test_any_configured_audience_is_taken(ci: OidcProvider, registry: RegistryProcess) -> None:
    with client(registry, ci.id_token("builder", "https://registry.example")) as c:
        assert push_small_image(c, "ci/other", "v1")[0].status_code == 201


def test_groups_from_the_claims_decide(ci: OidcProvider, registry: RegistryProcess) -> None:
    with client(registry, ci.id_token("builder", AUDIENCE)) as c:
        assert push_small_image(c, "ci/tool", "v1")[0].status_code == 201
        # shared/** gives authenticated users read only, builder's group nothing more
        assert_error(c.post("/v2/shared/x/blobs/uploads/"), 403, "DENIED")
    with client(registry, ci.id_token("reader", AUDIENCE)) as c:
        # reader's group is not ci: authenticated, refused (403, not 401)
        assert_error(c.get(manifest_path("ci/tool", "v1")), 403, "DENIED")
        assert_error(c.post("/v2/ci/tool/blobs/uploads/"), 403, "DENIED")
        listed = c.get("/v2/_catalog")
        assert listed.status_code == 200 and listed.json()["repositories"] == []


def test_conditions_read_the_tokens_claims(ci: OidcProvider, registry: RegistryProcess) -> None:
    """`req.claims` are the verified token's: the same group, another team is refused with
    the condition's message."""
    with client(registry, ci.id_token("builder", AUDIENCE)) as c:
        assert push_small_image(c, "blue/app", "v1")[0].status_code == 201
        assert c.get(manifest_path("blue/app", "v1")).status_code == 200
    with client(registry, ci.id_token("red-builder", AUDIENCE)) as c:
        r = c.get(manifest_path("blue/app", "v1"))
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == BLUE_ONLY
        r = c.post("/v2/blue/app/blobs/uploads/")
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == BLUE_ONLY


def test_default_mapping_names_issuer_and_subject(
    short: OidcProvider, registry: RegistryProcess
) -> None:
    # the second issuer: tried after the first, which does not vouch for its tokens
    with client(registry, short.id_token("deployer", AUDIENCE)) as c:
        assert push_small_image(c, "deploy/site", "v1")[0].status_code == 201
    with client(registry, short.id_token("intruder", AUDIENCE)) as c:
        assert_error(c.get(manifest_path("deploy/site", "v1")), 403, "DENIED")


def test_no_token_is_challenged(registry: RegistryProcess) -> None:
    with client(registry) as c:
        assert_refused(c.get("/v2/"), error=None)
        r = c.get(manifest_path("ci/app", "v1"))
        assert_refused(r, error=None)
        assert (
            parse_challenge(r.headers["www-authenticate"])[1]["scope"] == "repository:ci/app:pull"
        )


@pytest.mark.clients
def test_skopeo_copies_with_a_workload_token(
    tools: Tools, ci: OidcProvider, registry: RegistryProcess, tmp_path: Path
) -> None:
    """A real client sending the token itself (containers/image's registry token)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_image_layout(src, "v1", seed=61)
    skopeo = [require("skopeo"), "--policy", str(tools.policy), "copy"]
    target = f"docker://127.0.0.1:{registry.port}/ci/skopeo:v1"
    builder = ci.id_token("builder", AUDIENCE)
    push = [*skopeo, "--dest-tls-verify=false", f"oci:{src}:v1", target]
    tools.run([*push[:-2], "--dest-registry-token", builder, *push[-2:]])
    pull = [*skopeo, "--src-tls-verify=false", "--src-registry-token", builder]
    tools.run([*pull, target, f"oci:{dst}:v1"])
    assert (dst / "index.json").exists()
    reader = ci.id_token("reader", AUDIENCE)  # authenticated, but not in group ci
    refused = tools.run([*push[:-2], "--dest-registry-token", reader, *push[-2:]], check=False)
    assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr


def test_wrong_audience_is_refused(ci: OidcProvider, registry: RegistryProcess) -> None:
    with client(registry, ci.id_token("builder", "another-service")) as c:
        detail = assert_refused(c.get("/v2/"))
    assert "audience" in detail["reason"]


def test_untrusted_issuer_is_refused(stranger: OidcProvider, registry: RegistryProcess) -> None:
    with client(registry, stranger.id_token("builder", AUDIENCE)) as c:
        assert_refused(c.get("/v2/"))


def test_expired_token_is_refused(short: OidcProvider, registry: RegistryProcess) -> None:
    token = short.id_token("deployer", AUDIENCE)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    with client(registry, token) as c:
        assert c.get("/v2/").status_code == 200  # while it lives (and then remembered)
        while time.time() <= exp + 1:  # bounded: the token lives 2 seconds
            time.sleep(0.2)
        detail = assert_refused(c.get("/v2/"))
    assert "expired" in detail["reason"]


def test_tampered_and_forged_tokens_are_refused(
    ci: OidcProvider, registry: RegistryProcess
) -> None:
    token = ci.id_token("reader", AUDIENCE)
    claims = jwt.decode(token, options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(token).get("kid")  # this provider names none
    forged = {
        # the provider's signature over other claims
        tampered(token, groups=["ci"]): "Signature verification failed",
        jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid} if kid else None): (
            "Signature verification failed"
        ),
        jwt.encode(claims, key, algorithm="RS256", headers={"kid": "made-up"}): "no key",
        # symmetric: never taken (the "key" would be public)
        jwt.encode(claims, "s" * 32, algorithm="HS256"): "'HS256'",
        jwt.encode(claims, None, algorithm="none"): "'none'",
        "not-a-jwt": "not issued by a trusted issuer",
    }
    for bad, reason in forged.items():
        with client(registry, bad) as c:
            assert reason in assert_refused(c.get(manifest_path("ci/app", "v1")))["reason"]


def test_token_without_expiry_is_refused(ci: OidcProvider, registry: RegistryProcess) -> None:
    # Signed by nobody the registry trusts either way; what matters is that it is refused.
    claims = {"iss": ci.issuer, "aud": AUDIENCE, "sub": "builder", "groups": ["ci"]}
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with client(registry, jwt.encode(claims, key, algorithm="RS256")) as c:
        assert_refused(c.get("/v2/"))


def test_basic_credentials_are_not_taken(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/v2/", auth=("builder", "password"), timeout=30)
    assert_refused(r, error=None)


# --- in a cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, ci: OidcProvider, stranger: OidcProvider
) -> Iterator[list[RegistryProcess]]:
    """Two members with separate storage; only member 0 trusts `ci`: member 1 could not
    verify its tokens, so it must take the identity member 0 forwards."""
    workdir = tmp_path_factory.mktemp("oidc-cluster")
    configs = cluster_configs(workdir, count=2, shared_root=False)
    for i, cfg in enumerate(configs):
        issuer = (ci if i == 0 else stranger).issuer
        cfg["http"].update(
            {
                "auth": {
                    "bearer": {
                        "realm": REALM,
                        "service": SERVICE,
                        "oidc": [
                            {
                                "issuer": issuer,
                                "audiences": [AUDIENCE],
                                "claimMapping": {
                                    "username": "claims.sub",
                                    "groups": "claims.groups",
                                },
                            }
                        ],
                    }
                },
                "accessControl": {
                    "repositories": {
                        "cluster/**": {
                            "policies": [
                                {"groups": ["ci"], "actions": ALL, "conditions": [BLUE_TEAM]}
                            ]
                        }
                    }
                },
            }
        )
    members = [
        RegistryProcess(workdir, cfg, name=f"member{i}").start() for i, cfg in enumerate(configs)
    ]
    try:
        yield members
    finally:
        for proc in members:
            proc.stop()


def test_the_owner_authorizes_the_forwarded_identity_and_claims(
    ci: OidcProvider, cluster: list[RegistryProcess]
) -> None:
    repo = repo_owned_by(1, count=2)
    with client(cluster[0], ci.id_token("builder", AUDIENCE)) as c:
        assert push_small_image(c, repo, "v1")[0].status_code == 201
        assert c.get(manifest_path(repo, "v1")).status_code == 200
    with client(cluster[0], ci.id_token("reader", AUDIENCE)) as c:
        assert_error(c.get(manifest_path(repo, "v1")), 403, "DENIED")
    # The owner evaluates the conditions with the claims member 0 verified.
    with client(cluster[0], ci.id_token("red-builder", AUDIENCE)) as c:
        r = c.get(manifest_path(repo, "v1"))
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == BLUE_ONLY
    with client(cluster[1], ci.id_token("builder", AUDIENCE)) as c:
        assert_refused(c.get(manifest_path(repo, "v1")))  # member 1 does not trust ci


@pytest.mark.parametrize("groups", [100, 1000])
def test_a_token_with_many_claims_is_forwarded_whole(
    ci: OidcProvider, cluster: list[RegistryProcess], groups: int
) -> None:
    """A workload in many groups has a large token (`groups` extra names of 40 characters:
    tokens of ~8 and ~60 KB); the identity member 0 forwards carries every claim, and the
    owner, which does not trust the issuer, decides with them (its condition reads the
    `team` claim; the group `ci` is one of many)."""
    many = [f"group-{i:04d}-" + "x" * 29 for i in range(groups)]
    ci.set_user(f"crowd-{groups}", groups=[*many, "ci"], team="blue")
    token = ci.id_token(f"crowd-{groups}", AUDIENCE)
    assert len(token) > groups * 40
    repo = repo_owned_by(1, count=2)
    with client(cluster[0], token) as c:
        assert push_small_image(c, repo, f"crowd-{groups}")[0].status_code == 201
        assert c.get(manifest_path(repo, f"crowd-{groups}")).status_code == 200
    ci.set_user(f"crowd-{groups}", groups=[*many, "ci"], team="red")
    with client(cluster[0], ci.id_token(f"crowd-{groups}", AUDIENCE)) as c:
        r = c.get(manifest_path(repo, f"crowd-{groups}"))
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == BLUE_ONLY


# --- the token exchange ------------------------------------------------------------------


def test_exchange_answers_the_token_itself(ci: OidcProvider, registry: RegistryProcess) -> None:
    token = ci.id_token("builder", AUDIENCE)
    r = httpx.get(f"{registry.url}{TOKEN_PATH}", auth=("anyone", token), timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    answer = r.json()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert answer["token"] == answer["access_token"] == token
    assert 0 < answer["expires_in"] <= claims["exp"] - time.time() + 1
    assert answer["issued_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["iat"]))
    form = {"grant_type": "password", "username": "x", "password": token}
    r = httpx.post(f"{registry.url}{TOKEN_PATH}", data=form, timeout=30)
    assert r.status_code == 200 and r.json()["token"] == token


def test_exchange_refuses_with_a_basic_challenge(
    ci: OidcProvider, stranger: OidcProvider, registry: RegistryProcess
) -> None:
    realm = f'Basic realm="{registry.url}{TOKEN_PATH}"'
    for token in (
        None,
        ci.id_token("builder", "another-service"),
        stranger.id_token("builder", AUDIENCE),
        tampered(ci.id_token("reader", AUDIENCE), groups=["ci"]),
        "a-password",
    ):
        auth = ("anyone", token) if token else None
        r = httpx.get(f"{registry.url}{TOKEN_PATH}", auth=auth, timeout=30)
        assert_error(r, 401, "UNAUTHORIZED")
        assert r.headers["www-authenticate"] == realm
    r = httpx.post(f"{registry.url}{TOKEN_PATH}", data={"password": "x" * (65 << 10)}, timeout=30)
    assert_error(r, 413, "UNSUPPORTED")


@pytest.mark.clients
def test_skopeo_logs_in_with_the_token_as_password(
    tools: Tools, ci: OidcProvider, registry: RegistryProcess, tmp_path: Path
) -> None:
    """The registry-login way (`docker login -u any -p <token>`): the challenge's realm is
    the token exchange, which hands the token back as the bearer token."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_image_layout(src, "v1", seed=62)
    skopeo = [require("skopeo"), "--policy", str(tools.policy), "copy"]
    target = f"docker://127.0.0.1:{registry.port}/ci/login:v1"
    creds = f"zot:{ci.id_token('builder', AUDIENCE)}"
    tools.run([*skopeo, "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{src}:v1", target])
    tools.run([*skopeo, "--src-tls-verify=false", "--src-creds", creds, target, f"oci:{dst}:v1"])
    assert (dst / "index.json").exists()


# --- an issuer that signs what the test asks ----------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Iterator[SigningIssuer]:
    with SigningIssuer() as issuer:
        issuer.add_key("k1")
        yield issuer


@pytest.fixture(scope="module")
def signer_registry(
    tmp_path_factory: pytest.TempPathFactory, signer: SigningIssuer
) -> Iterator[RegistryProcess]:
    issuer = {
        "issuer": signer.issuer,
        "audiences": [AUDIENCE],
        "claimMapping": {"username": "claims.sub"},
    }
    http = {"auth": {"bearer": {"realm": REALM, "service": SERVICE, "oidc": [issuer]}}}
    # one worker: the JWKS fetches counted are one cache's
    with start_registry(tmp_path_factory.mktemp("signer"), http, name="signer") as proc:
        yield proc


def claims_of(signer: SigningIssuer, **changes: Any) -> dict[str, Any]:
    claims = {"iss": signer.issuer, "aud": AUDIENCE, "sub": "w", "exp": int(time.time()) + 300}
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


def test_the_claims_of_a_well_signed_token_are_checked(
    signer: SigningIssuer, signer_registry: RegistryProcess
) -> None:
    def status(token: str) -> tuple[int, str]:
        r = httpx.get(f"{signer_registry.url}/v2/", headers=bearer(token), timeout=30)
        if r.status_code == 200:
            return 200, ""
        return r.status_code, assert_refused(r)["reason"]

    now = int(time.time())
    assert status(signer.sign(claims_of(signer), "k1")) == (200, "")
    assert status(signer.sign(claims_of(signer, aud=["x", AUDIENCE]), "k1")) == (200, "")
    refused = {
        "without a valid expiry": claims_of(signer, exp=None),  # zot refuses these too
        "expired": claims_of(signer, exp=now - 5),
        "not valid yet": claims_of(signer, nbf=now + 600),
        "another audience": claims_of(signer, aud=["x"]),
        "valid audience": claims_of(signer, aud=[1]),
        "not issued by a trusted issuer": claims_of(signer, iss="https://elsewhere"),
        "claimMapping": claims_of(signer, sub=None),
    }
    for reason, claims in refused.items():
        code, said = status(signer.sign(claims, "k1"))
        assert code == 401 and reason in said, (reason, said)


def test_rotated_keys_are_fetched_made_up_ones_not_each_time(
    signer: SigningIssuer, signer_registry: RegistryProcess
) -> None:
    url = f"{signer_registry.url}/v2/"
    first = signer.sign(claims_of(signer), "k1")
    assert httpx.get(url, headers=bearer(first), timeout=30).status_code == 200
    signer.add_key("k2")
    rotated = signer.sign(claims_of(signer, sub="rotated"), "k2")
    # the JWKS is fetched again for the new key, at most once per 10 s: within 15 s
    deadline = time.monotonic() + 15
    while httpx.get(url, headers=bearer(rotated), timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the rotated key was never fetched"
        time.sleep(0.5)
    fetches = signer.jwks_fetches
    for i in range(20):
        made_up = signer.sign(claims_of(signer, sub=f"m{i}"), f"made-up-{i}", key_of="k2")
        r = httpx.get(url, headers=bearer(made_up), timeout=30)
        assert "no key" in assert_refused(r)["reason"]
    assert signer.jwks_fetches - fetches <= 1
    # a token naming no key: every published key is tried (as go-oidc does)
    unnamed = signer.sign(claims_of(signer, sub="unnamed"), None, key_of="k2")
    assert httpx.get(url, headers=bearer(unnamed), timeout=30).status_code == 200


# --- providers that are down -------------------------------------------------------------


def unsigned_for(issuer: str) -> str:
    """A well-formed token naming `issuer` (signed by a key of ours: the registry must ask
    the issuer for its keys before it can tell)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k"})


@pytest.fixture(scope="module")
def down_registry(
    tmp_path_factory: pytest.TempPathFactory, silent_issuer: str
) -> Iterator[tuple[RegistryProcess, str]]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    oidc = [
        {"issuer": closed, "audiences": [AUDIENCE]},
        {"issuer": silent_issuer, "audiences": [AUDIENCE]},
    ]
    http = {"auth": {"bearer": {"realm": REALM, "service": SERVICE, "oidc": oidc}}}  # not a URL
    with start_registry(tmp_path_factory.mktemp("oidc-down"), http, name="oidc-down") as proc:
        yield proc, closed


def test_unreachable_issuer_is_a_quick_401(down_registry: tuple[RegistryProcess, str]) -> None:
    registry, closed = down_registry
    with client(registry, unsigned_for(closed)) as c:
        started = time.monotonic()
        detail = assert_refused(c.get("/v2/"))
        assert time.monotonic() - started < 3
    assert "unavailable" in detail["reason"]


def test_silent_issuer_is_a_bounded_401(
    down_registry: tuple[RegistryProcess, str], silent_issuer: str
) -> None:
    registry, _ = down_registry
    with client(registry, unsigned_for(silent_issuer)) as c:
        started = time.monotonic()
        assert_refused(c.get("/v2/"))
        first = time.monotonic() - started
        # the provider's timeout (5 s), not the client's
        assert first < 10, first
        # remembered as down for a few seconds: the next request does not wait again
        started = time.monotonic()
        assert_refused(c.get("/v2/"))
        assert time.monotonic() - started < 2


# --- with the token server's tokens ------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_registry(
    tmp_path_factory: pytest.TempPathFactory, ci: OidcProvider, token_server: TokenServer
) -> Iterator[RegistryProcess]:
    """ID tokens, the token server's tokens and htpasswd passwords, all at once."""
    workdir = tmp_path_factory.mktemp("oidc-mixed")
    http = workload_config(ci, ci, free_port())
    http["auth"]["bearer"].update(
        realm=token_server.realm,
        cert=str(token_server.files.cert),
        oidc=http["auth"]["bearer"]["oidc"][:1],
    )
    http["auth"]["htpasswd"] = {"path": str(write_htpasswd(workdir / "htpasswd", PASSWORDS))}
    with start_registry(workdir, http, name="oidc-mixed") as proc:
        yield proc


def test_passwords_still_work_beside_oidc(mixed_registry: RegistryProcess) -> None:
    # ocireg's way (docs/auth.md): Basic beside bearer; accessControl decides for "dave"
    with httpx.Client(base_url=mixed_registry.url, auth=basic("dave"), timeout=30) as c:
        assert c.get("/v2/").status_code == 200
        assert_error(c.post("/v2/ci/app/blobs/uploads/"), 403, "DENIED")
    r = httpx.get(f"{mixed_registry.url}/v2/", auth=("dave", "wrong"), timeout=30)
    assert_error(r, 401, "UNAUTHORIZED")
    assert parse_challenge(r.headers["www-authenticate"])[0] == "bearer"


def test_token_server_tokens_still_work_beside_oidc(
    ci: OidcProvider, token_server: TokenServer, mixed_registry: RegistryProcess
) -> None:
    grant = {"type": "repository", "name": "team/x", "actions": ["pull", "push"]}
    server_token = token_server.mint("alice", [grant])
    with client(mixed_registry, server_token) as c:
        # the token server's grants decide, not accessControl (which names no team/)
        assert push_small_image(c, "team/x", "v1")[0].status_code == 201
    with client(mixed_registry, ci.id_token("builder", AUDIENCE)) as c:
        assert push_small_image(c, "ci/app", "v1")[0].status_code == 201
        assert_error(c.get(manifest_path("team/x", "v1")), 403, "DENIED")
    with client(mixed_registry, ci.id_token("builder", "another-service")) as c:
        r = c.get("/v2/")
        assert_error(r, 401, "UNAUTHORIZED")
        assert parse_challenge(r.headers["www-authenticate"])[1]["realm"] == token_server.realm


# --- crafted tokens and broken issuers: 401s, never a 500 ----------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_crafted_tokens_are_refused_not_500(
    signer: SigningIssuer, signer_registry: RegistryProcess
) -> None:
    url = signer_registry.url
    # A payload nested a few thousand deep (8 KiB) that names the issuer: anyone can send it.
    nested = json.dumps({"iss": signer.issuer, "a": "NEST"}).replace(
        '"NEST"', "[" * 3000 + "]" * 3000
    )
    deep = b64url(b'{"alg": "RS256"}') + "." + b64url(nested.encode()) + ".x"
    assert_refused(httpx.get(f"{url}/v2/", headers=bearer(deep), timeout=30))
    # Signed by the issuer: an audience of odd values, a NaN or infinite expiry (Python's
    # JSON reads both; NaN is neither past nor future), an expiry past any float.
    odd_audience = signer.sign(claims_of(signer, aud=[["x"], {}]), "k1")
    endless = [signer.sign(claims_of(signer, exp=e), "k1") for e in (math.nan, math.inf, 10**400)]
    for token in [deep, odd_audience]:
        r = httpx.get(f"{url}{TOKEN_PATH}", auth=("x", token), timeout=30)
        assert_error(r, 401, "UNAUTHORIZED")
    for token in endless:
        r = httpx.get(f"{url}/v2/", headers=bearer(token), timeout=30)
        assert "expiry" in assert_refused(r)["reason"]
        r = httpx.get(f"{url}{TOKEN_PATH}", auth=("x", token), timeout=30)
        assert_error(r, 401, "UNAUTHORIZED")
    # An issued-at past year 9999, or NaN: the exchange answers without one.
    for iat in (1e300, math.nan):
        token = signer.sign(claims_of(signer, iat=iat, sub=f"iat-{iat}"), "k1")
        r = httpx.get(f"{url}{TOKEN_PATH}", auth=("x", token), timeout=30)
        assert r.status_code == 200 and r.json()["issued_at"] == "", r.text


@pytest.fixture(scope="module")
def broken_issuers() -> Iterator[dict[str, SigningIssuer]]:
    """Issuers whose discovery or JWKS answers a JSON object that is not what it should be."""
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answers = {
        "algorithms not a list": ("/.well-known/openid-configuration", None),
        "discovery nested deep": ("/.well-known/openid-configuration", deep),
        "keys not a list": ("/jwks", b'{"keys": 5}'),
        "JWKS nested deep": ("/jwks", deep),
    }
    with contextlib.ExitStack() as stack:
        issuers = {}
        for name, (path, body) in answers.items():
            issuer = stack.enter_context(SigningIssuer())
            issuer.add_key("k1")
            doc = {"issuer": issuer.issuer, "jwks_uri": f"{issuer.issuer}/jwks"}
            listed = {**doc, "id_token_signing_alg_values_supported": 5}
            issuer.answers[path] = json.dumps(listed).encode() if body is None else body
            issuers[name] = issuer
        yield issuers


def test_a_broken_issuer_is_unavailable_not_500(
    tmp_path: Path, broken_issuers: dict[str, SigningIssuer]
) -> None:
    oidc = [{"issuer": i.issuer, "audiences": [AUDIENCE]} for i in broken_issuers.values()]
    http = {"auth": {"bearer": {"realm": REALM, "service": SERVICE, "oidc": oidc}}}
    with start_registry(tmp_path, http, name="oidc-broken") as registry:
        for name, issuer in broken_issuers.items():
            token = issuer.sign(claims_of(issuer), "k1")
            r = httpx.get(f"{registry.url}/v2/", headers=bearer(token), timeout=30)
            assert r.status_code == 401, (name, r.text)
            assert "unavailable" in assert_refused(r)["reason"], name
