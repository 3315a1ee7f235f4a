"""zot's policy conditions (CEL expressions in `policies[].conditions` and `adminPolicy`)
over real HTTP: a policy grants only when its conditions hold; a refused user gets 403
DENIED with the condition's message as `detail.reason`; an expression that fails to
evaluate or gives no boolean grants nothing and tells nothing; one that does not compile is
refused by `ocireg verify`, `serve` and a reload, naming its key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conditions_scenario import (
    ACCESS_CONTROL,
    ADMIN_TOOL,
    DIGEST_ONLY,
    EXPIRED,
    sequence,
)
from tests.auth.conftest import PASSWORDS, client_for, start_registry, write_htpasswd
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import (
    assert_error,
    blob_path,
    manifest_path,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    uploads_path,
)
from tests.support.server import run_cli, wait_until

PROXY = "only through the proxy"
# What zot v2.1.20 answers to the same sequence (tests/interop/test_conditions.py).
EXPECTED = [
    ("alice pushes the config blob", 201, None, None),
    ("alice pushes the layer blob", 201, None, None),
    ("alice pushes a tag", 403, "DENIED", DIGEST_ONLY),
    ("alice pushes by digest", 201, None, None),
    ("alice pulls by digest", 200, None, None),
    ("alice pulls a blob", 200, None, None),
    ("alice lists tags", 200, None, None),
    ("bob pulls by digest", 403, "DENIED", EXPIRED),
    ("bob pushes a blob", 403, "DENIED", EXPIRED),
    ("carol pulls", 200, None, None),
    ("carol heads", 200, None, None),
    ("carol pushes a tag", 403, "DENIED", None),
    ("dave pulls prod", 403, "DENIED", None),
    ("anonymous pulls prod", 401, "UNAUTHORIZED", None),
    ("root pushes a tag", 403, "DENIED", ADMIN_TOOL),
    ("root pushes a tag with admin-tool", 201, None, None),
    ("alice overwrites the tag", 403, "DENIED", DIGEST_ONLY),
    ("alice pulls the tag", 403, "DENIED", DIGEST_ONLY),
    ("root deletes", 403, "DENIED", ADMIN_TOOL),
    ("alice reads broken", 403, "DENIED", None),
    ("carol reads broken", 403, "DENIED", None),
    ("dave reads xff directly", 403, "DENIED", PROXY),
    ("dave reads xff via the proxy", 404, "NAME_UNKNOWN", None),
    ("dave reads xff via another", 403, "DENIED", PROXY),
    ("bob's catalog", 200, None, None),
    ("bob's catalog lists", 0, None, "prod/app"),  # listings do not evaluate conditions
    ("root deletes with admin-tool", 202, None, None),
]


def _http(tmp_path: Path, access_control: dict[str, Any]) -> dict[str, Any]:
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", PASSWORDS)
    return {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": access_control}


def test_conditions_decide_as_zot_does(tmp_path: Path) -> None:
    with (
        start_registry(tmp_path, _http(tmp_path, ACCESS_CONTROL), workers=2) as registry,
        httpx.Client(base_url=registry.url, timeout=30.0) as c,
    ):
        assert sequence(c) == EXPECTED
        # Header bytes that are no UTF-8 in the User-Agent and X-Forwarded-For: a refusal
        # like any other, never a 500.
        odd = {"User-Agent": b"admin-tool\xff/1", "X-Forwarded-For": b"\xfe, ,"}
        r = c.get("/v2/xff/x/tags/list", headers=odd, auth=httpx.BasicAuth("dave", "dave-pw"))
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == PROXY
        assert "Traceback" not in registry.log_path.read_text()


BAD = [
    ('user.name == "alice"', "undeclared reference to 'user"),
    ("req.action ==", "Syntax error"),
    ('1 + "a"', "found no matching overload for '_+_'"),
    ('req.repository.nosuchfunction("x")', "undeclared reference to 'nosuchfunction'"),
]


@pytest.mark.parametrize(("expression", "words"), BAD)
def test_verify_and_serve_refuse_an_expression_that_does_not_compile(
    tmp_path: Path, expression: str, words: str
) -> None:
    access = copy.deepcopy(ACCESS_CONTROL)
    access["repositories"]["prod/**"]["policies"][1]["conditions"].append(
        {"expression": expression, "message": "m"}
    )
    raw = {"storage": {"rootDirectory": str(tmp_path / "root")}, "http": _http(tmp_path, access)}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    key = "http.accessControl.repositories.prod/**.policies[1].conditions[1].expression"
    for command in ("verify", "serve"):
        result = run_cli(command, str(path), timeout=60)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert key in result.stderr, result.stderr
        assert "invalid CEL expression" in result.stderr and words in result.stderr


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ({"expression": ""}, "non-empty string"),  # zot: a parse error
        ({"message": "no expression"}, "non-empty string"),
        ({"expression": "true", "mesage": "typo"}, "unknown key"),
        ("true", "expected a map"),
    ],
)
def test_verify_refuses_a_malformed_condition(tmp_path: Path, condition: Any, words: str) -> None:
    policy = {"users": ["alice"], "actions": ["read"], "conditions": [condition]}
    access = {"adminPolicy": policy}
    raw = {"storage": {"rootDirectory": str(tmp_path / "root")}, "http": _http(tmp_path, access)}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    result = run_cli("verify", str(path), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "http.accessControl.adminPolicy.conditions[0]" in result.stderr, result.stderr
    assert words in result.stderr, result.stderr


def test_a_reload_recompiles_the_conditions(tmp_path: Path) -> None:
    def policy(expression: str) -> dict[str, Any]:
        condition = {"expression": expression, "message": "not yet"}
        rule = {"users": ["alice"], "actions": ["read"], "conditions": [condition]}
        return {"repositories": {"**": {"policies": [rule]}}}

    http = _http(tmp_path, policy('req.repository == "nothing"'))
    with start_registry(tmp_path, http) as registry, client_for(registry, "alice") as alice:
        r = alice.get("/v2/reload/app/tags/list")
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == "not yet"
        log = registry.log_path
        config = json.loads(registry.config_path.read_text())
        config["http"]["accessControl"] = policy('req.repository.startsWith("reload/")')
        registry.config_path.write_text(json.dumps(config))
        wait_until(lambda: "Stopped old worker" in log.read_text(), timeout=60)
        with client_for(registry, "alice") as fresh:
            assert_error(fresh.get("/v2/reload/app/tags/list"), 404, "NAME_UNKNOWN")
        # One that does not compile is refused; the last good one stays in force.
        config["http"]["accessControl"] = policy("req.repository.startsWith(")
        registry.config_path.write_text(json.dumps(config))
        wait_until(lambda: "configuration reload refused" in log.read_text(), timeout=30)
        assert "invalid CEL expression" in log.read_text()
        with client_for(registry, "alice") as fresh:
            assert_error(fresh.get("/v2/reload/app/tags/list"), 404, "NAME_UNKNOWN")


def test_conditions_through_a_non_owner_member(tmp_path: Path) -> None:
    """Separate storage: every request for the repository goes to its owner, which evaluates
    the conditions with the headers the client sent and whose refusal (with its reason)
    comes back through the member."""
    condition = [
        {"expression": 'req.referenceType != "tag"', "message": DIGEST_ONLY},
        {"expression": 'req.userAgent.startsWith("ok/")', "message": "agent"},
    ]
    rule = {"users": ["alice"], "actions": ["read", "create"], "conditions": condition}
    access = {"repositories": {"team/**": {"policies": [rule]}}}
    configs = cluster_configs(tmp_path, count=2, shared_root=False)
    for cfg in configs:
        cfg["http"].update(_http(tmp_path, access))
    repo = repo_owned_by(1, count=2, prefix="team")
    with (
        running_members(tmp_path, configs) as members,
        httpx.Client(
            base_url=members[0].url,
            auth=httpx.BasicAuth("alice", PASSWORDS["alice"]),
            headers={"User-Agent": "ok/1"},
            timeout=30,
        ) as alice,
    ):
        image = push_image(alice, repo)  # blobs, then the manifest by digest
        r = alice.get(manifest_path(repo, image.digest))
        assert r.status_code == 200 and r.content == image.manifest
        r = push_manifest(alice, repo, "v1", image.manifest)
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == DIGEST_ONLY
        r = alice.get(manifest_path(repo, image.digest), headers={"User-Agent": "other"})
        assert assert_error(r, 403, "DENIED")["detail"]["reason"] == "agent"
        assert '"method": "PUT"' in members[1].logs()  # the owner served the writes


def test_a_mount_does_not_hand_over_what_a_condition_refuses(tmp_path: Path) -> None:
    """bob's read of prod/ expired (a condition): his mount from it becomes a plain upload
    (202), and nothing lands in his repository; his own repository mounts as before."""
    access = {
        "repositories": {
            "prod/**": ACCESS_CONTROL["repositories"]["prod/**"],
            "bob/**": {"policies": [{"users": ["bob"], "actions": ["read", "create"]}]},
        },
        "adminPolicy": {"users": ["root"], "actions": ["read", "create", "update", "delete"]},
    }
    with start_registry(tmp_path, _http(tmp_path, access)) as registry:
        root, bob = client_for(registry, "root"), client_for(registry, "bob")
        data, digest = random_blob()
        push_blob(root, "prod/app", data)
        assert assert_error(bob.get(blob_path("prod/app", digest)), 403, "DENIED")
        r = bob.post(uploads_path("bob/app"), params={"mount": digest, "from": "prod/app"})
        assert r.status_code == 202, r.text
        assert bob.head(blob_path("bob/app", digest)).status_code == 404
        push_blob(root, "bob/src", data)
        r = bob.post(uploads_path("bob/app"), params={"mount": digest, "from": "bob/src"})
        assert r.status_code == 201, r.text
