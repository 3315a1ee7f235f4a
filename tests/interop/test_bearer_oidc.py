"""The same `http.auth.bearer.oidc` config (workload identity) given to zot and to ocireg,
and the same sequence of requests with real ID tokens minted by real OpenID providers
(oidc-provider-mock, tests/support/oidc.py): every step gets the same status from both.

Two trusted issuers, as in tests/auth/test_bearer_oidc.py: `ci` (user = `sub`, groups =
the `groups` claim) and `short` (zot's default mapping, user = `iss/sub`; tokens live 2
seconds); `stranger` is trusted by nobody. The deliberate differences (docs/auth.md,
"Workload identity"):
- a refused token's challenge carries `error="invalid_token"` (RFC 6750) at ocireg, not at
  zot; realm, service and a repository's scope are the same (the ping's and the catalog's
  scope differ as with the token server's tokens: zot `scope=""` and `repository::pull`,
  ocireg none and `registry:catalog:*`);
- an issuer that takes connections and never answers: zot's request waits as long as the
  client does (its provider client has no timeout), and since zot asks every issuer in
  turn, so does every request whose token the issuers before it refused; ocireg answers
  401 after 5 seconds, and asks only the issuer the token names.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.conftest import SERVICE, parse_challenge
from tests.auth.workloads import AUDIENCE, BLUE_ONLY, REALM, tampered, trusted, workload_access
from tests.support.oci import manifest_path, push_small_image
from tests.support.oidc import OidcProvider
from tests.support.server import RegistryProcess, base_config, free_port, run_cli
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow
KINDS = ("zot", "ocireg")


@pytest.fixture(scope="module")
def closed() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def config(root: Any, issuers: list[dict[str, Any]], short: OidcProvider) -> dict[str, Any]:
    cfg = base_config(root)
    cfg["http"]["auth"] = {"bearer": {"realm": REALM, "service": SERVICE, "oidc": issuers}}
    cfg["http"]["accessControl"] = workload_access(short)
    return cfg


@pytest.fixture(scope="module")
def registries(
    tmp_path_factory: pytest.TempPathFactory,
    ci: OidcProvider,
    short: OidcProvider,
    closed: str,
) -> Iterator[dict[str, RegistryProcess]]:
    issuers = [*trusted(ci, short), {"issuer": closed, "audiences": [AUDIENCE]}]
    with both(tmp_path_factory, issuers, short) as started:
        yield started


@contextlib.contextmanager
def both(
    tmp_path_factory: pytest.TempPathFactory, issuers: list[dict[str, Any]], short: OidcProvider
) -> Iterator[dict[str, RegistryProcess]]:
    started: dict[str, RegistryProcess] = {}
    try:
        for kind in KINDS:
            workdir = tmp_path_factory.mktemp(kind)
            proc = zot_or_ocireg(kind, workdir, config(workdir / "root", issuers, short))
            started[kind] = proc.start()
        yield started
    finally:
        for proc in started.values():
            proc.stop()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def statuses(
    registries: dict[str, RegistryProcess],
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
) -> dict[str, httpx.Response]:
    out = {}
    for kind, proc in registries.items():
        out[kind] = httpx.request(method, proc.url + path, headers=headers, timeout=30)
    return out


def same(answers: dict[str, httpx.Response], status: int) -> None:
    got = {kind: r.status_code for kind, r in answers.items()}
    assert got == dict.fromkeys(KINDS, status), {k: r.text[:300] for k, r in answers.items()}


def same_challenge(answers: dict[str, httpx.Response], scope: bool = True) -> None:
    """realm, service and (with `scope`) scope agree (ocireg adds `error` for a refused
    token; the ping's and catalog's scopes differ, see above)."""
    seen = []
    for r in answers.values():
        _, params = parse_challenge(r.headers["www-authenticate"])
        seen.append({k: v for k, v in params.items() if k in ("realm", "service", "scope")})
        if not scope:
            seen[-1].pop("scope", None)
    assert seen[0] == seen[1], seen


def test_no_token(registries: dict[str, RegistryProcess]) -> None:
    for path in ("/v2/", manifest_path("ci/app", "v1"), "/v2/_catalog"):
        answers = statuses(registries, "GET", path)
        same(answers, 401)
        same_challenge(answers, scope=path.startswith("/v2/ci/"))


def test_push_pull_and_groups(ci: OidcProvider, registries: dict[str, RegistryProcess]) -> None:
    builder = bearer(ci.id_token("builder", AUDIENCE))
    for proc in registries.values():
        with httpx.Client(base_url=proc.url, headers=builder, timeout=30) as c:
            assert push_small_image(c, "ci/app", "v1")[0].status_code == 201
    same(statuses(registries, "GET", "/v2/", builder), 200)
    same(statuses(registries, "GET", manifest_path("ci/app", "v1"), builder), 200)
    same(statuses(registries, "POST", "/v2/shared/x/blobs/uploads/", builder), 403)
    other = bearer(ci.id_token("builder", "https://registry.example"))  # the second audience
    same(statuses(registries, "GET", manifest_path("ci/app", "v1"), other), 200)
    reader = bearer(ci.id_token("reader", AUDIENCE))
    same(statuses(registries, "GET", "/v2/", reader), 200)
    same(statuses(registries, "GET", manifest_path("ci/app", "v1"), reader), 403)
    same(statuses(registries, "POST", "/v2/ci/app/blobs/uploads/", reader), 403)


def test_conditions_on_the_tokens_claims(
    ci: OidcProvider, registries: dict[str, RegistryProcess]
) -> None:
    """zot fills `req.claims` with a workload token's claims: a condition on one grants
    one team and refuses another of the same group, with the condition's message."""
    builder = bearer(ci.id_token("builder", AUDIENCE))
    for proc in registries.values():
        with httpx.Client(base_url=proc.url, headers=builder, timeout=30) as c:
            assert push_small_image(c, "blue/app", "v1")[0].status_code == 201
    same(statuses(registries, "GET", manifest_path("blue/app", "v1"), builder), 200)
    red = bearer(ci.id_token("red-builder", AUDIENCE))
    answers = statuses(registries, "GET", manifest_path("blue/app", "v1"), red)
    same(answers, 403)
    reasons = {k: r.json()["errors"][0]["detail"]["reason"] for k, r in answers.items()}
    assert reasons == dict.fromkeys(KINDS, BLUE_ONLY)
    same(statuses(registries, "POST", "/v2/blue/app/blobs/uploads/", red), 403)


def test_default_mapping(short: OidcProvider, registries: dict[str, RegistryProcess]) -> None:
    deployer = bearer(short.id_token("deployer", AUDIENCE))
    for proc in registries.values():
        with httpx.Client(base_url=proc.url, headers=deployer, timeout=30) as c:
            assert push_small_image(c, "deploy/site", "v1")[0].status_code == 201
    intruder = bearer(short.id_token("intruder", AUDIENCE))
    same(statuses(registries, "GET", manifest_path("deploy/site", "v1"), intruder), 403)


def test_refused_tokens(
    ci: OidcProvider,
    short: OidcProvider,
    stranger: OidcProvider,
    closed: str,
    registries: dict[str, RegistryProcess],
) -> None:
    token = ci.id_token("reader", AUDIENCE)
    claims = jwt.decode(token, options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    expiring = short.id_token("deployer", AUDIENCE)
    no_exp = {k: v for k, v in claims.items() if k != "exp"}
    refused = {
        "wrong audience": ci.id_token("builder", "another-service"),
        "untrusted issuer": stranger.id_token("builder", AUDIENCE),
        "tampered": tampered(token, groups=["ci"]),
        "another key": jwt.encode(claims, key, algorithm="RS256"),
        "HS256": jwt.encode(claims, "s" * 32, algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "no exp": jwt.encode(no_exp, key, algorithm="RS256"),
        "garbage": "not-a-jwt",
        "issuer down": jwt.encode({**claims, "iss": closed}, key, algorithm="RS256"),
    }
    exp = jwt.decode(expiring, options={"verify_signature": False})["exp"]
    while time.time() <= exp + 1:  # bounded: the token lives 2 seconds
        time.sleep(0.2)
    refused["expired"] = expiring
    for name, bad in refused.items():
        answers = statuses(registries, "GET", manifest_path("ci/app", "v1"), bearer(bad))
        assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(KINDS, 401), name
        same_challenge(answers)


def test_basic_credentials(registries: dict[str, RegistryProcess]) -> None:
    basic = "Basic " + base64.b64encode(b"builder:pw").decode()
    same(statuses(registries, "GET", "/v2/", {"authorization": basic}), 401)


def test_token_exchange(
    ci: OidcProvider, stranger: OidcProvider, registries: dict[str, RegistryProcess]
) -> None:
    """zot's /zot/auth/token: the token back for a trusted one, a Basic challenge else."""
    token = ci.id_token("builder", AUDIENCE)
    basic = "Basic " + base64.b64encode(f"zot:{token}".encode()).decode()
    answers = statuses(registries, "GET", "/zot/auth/token", {"authorization": basic})
    same(answers, 200)
    bodies = [r.json() for r in answers.values()]
    assert bodies[0]["token"] == bodies[1]["token"] == bodies[0]["access_token"] == token
    assert bodies[0]["issued_at"] == bodies[1]["issued_at"]
    assert abs(bodies[0]["expires_in"] - bodies[1]["expires_in"]) <= 2
    assert {r.headers["cache-control"] for r in answers.values()} == {"no-store"}
    for proc in registries.values():
        r = httpx.post(f"{proc.url}/zot/auth/token", data={"password": token}, timeout=30)
        assert r.status_code == 200 and r.json()["token"] == token
    for bad in (
        ci.id_token("builder", "another-service"),
        stranger.id_token("builder", AUDIENCE),
        tampered(token, sub="root"),
        "a-password",
    ):
        basic = "Basic " + base64.b64encode(f"zot:{bad}".encode()).decode()
        answers = statuses(registries, "GET", "/zot/auth/token", {"authorization": basic})
        same(answers, 401)
        assert {r.headers["www-authenticate"] for r in answers.values()} == {
            f'Basic realm="{REALM}"'
        }
    same(statuses(registries, "GET", "/zot/auth/token"), 401)


def test_silent_issuer(
    tmp_path_factory: pytest.TempPathFactory,
    silent_issuer: str,
    ci: OidcProvider,
    short: OidcProvider,
) -> None:
    """The deliberate difference: zot waits as long as its client does, ocireg not; at zot
    even a token of the issuer listed after the silent one waits."""
    issuers = [
        {"issuer": silent_issuer, "audiences": [AUDIENCE]},
        {"issuer": ci.issuer, "audiences": [AUDIENCE], "claimMapping": {"username": "claims.sub"}},
    ]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": silent_issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 600}
    silents = bearer(jwt.encode(claims, key, algorithm="RS256"))
    builder = bearer(ci.id_token("builder", AUDIENCE))
    with both(tmp_path_factory, issuers, short) as registries:
        started = time.monotonic()
        r = httpx.get(registries["ocireg"].url + "/v2/", headers=silents, timeout=15)
        assert r.status_code == 401 and time.monotonic() - started < 10
        r = httpx.get(registries["ocireg"].url + "/v2/", headers=builder, timeout=15)
        assert r.status_code == 200
        for token in (silents, builder):
            with pytest.raises(httpx.ReadTimeout):
                httpx.get(registries["zot"].url + "/v2/", headers=token, timeout=8)


# (claimMapping, zot starts with it, ocireg verify accepts it): zot compiles the mapping
# when it starts (and panics on one that does not compile); the same verdicts but for the
# dialect difference docs/auth.md lists (cel-go's cross-type numeric comparisons).
MAPPINGS = [
    ({"username": "claim.sub"}, False, False),  # undeclared
    ({"username": "claims.sub.nosuch()"}, False, False),
    ({"username": "claims."}, False, False),  # syntax
    ({"variables": [{"name": "x", "expression": "'x' + 1"}]}, False, False),
    ({"validations": [{"expression": "claims.email_verified", "message": "m"}]}, False, False),
    (
        {"validations": [{"expression": "claims.email_verified == true", "message": "m"}]},
        True,
        True,
    ),
    ({"username": "claims.sub + 1"}, True, True),  # dyn: fails per token, not at load
    ({"username": "claims.sub.lowerAscii()", "groups": "claims.sub.split(':')"}, True, True),
    ({"validations": [{"expression": "sets.contains(['a'], ['a'])", "message": "m"}]}, True, True),
    ({"validations": [{"expression": "1 < 1.5", "message": "m"}]}, True, False),
]


@pytest.mark.parametrize(("mapping", "zot_accepts", "ocireg_accepts"), MAPPINGS)
def test_claim_mapping_verdicts(
    tmp_path_factory: pytest.TempPathFactory,
    mapping: dict[str, Any],
    zot_accepts: bool,
    ocireg_accepts: bool,
    closed: str,
) -> None:
    workdir = tmp_path_factory.mktemp("mapping")
    cfg = base_config(workdir / "root")
    issuer = {"issuer": closed, "audiences": [AUDIENCE], "claimMapping": mapping}
    cfg["http"]["auth"] = {"bearer": {"realm": REALM, "service": SERVICE, "oidc": [issuer]}}
    zot = zot_or_ocireg("zot", workdir, cfg)
    try:
        zot.start(timeout=20)
        started = True
    except RuntimeError:  # exited: the mapping refused
        started = False
    finally:
        zot.stop()
    assert started is zot_accepts, zot.logs()[-2000:]
    path = workdir / "ocireg.json"
    path.write_text(json.dumps(cfg))
    ours = run_cli("verify", str(path), timeout=60)
    assert (ours.returncode == 0) is ocireg_accepts, ours.stderr
    if not ocireg_accepts:
        assert "http.auth.bearer.oidc[0].claimMapping" in ours.stderr, ours.stderr
