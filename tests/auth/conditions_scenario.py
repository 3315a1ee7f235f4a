"""One access-control config with zot's policy conditions (CEL) and one sequence of real
requests against it, each reduced to what a client sees: status, error code and the
`detail.reason` a refused user is told. tests/auth/test_conditions.py checks ocireg's
answers; tests/interop/test_conditions.py checks that zot v2.1.20 gives the same ones.

Users (tests/auth/conftest.py): alice may push to prod/ by digest only (and until 2099),
bob's prod access expired in 2000, carol reads prod/ as a member of group devs with a GET
or HEAD only, dave reads xff/ only through a given proxy chain, root is an admin who must
say so in the User-Agent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.auth.conftest import basic
from tests.support.oci import (
    descriptor,
    encode_json,
    image_manifest,
    manifest_path,
    push_blob_monolithic,
    random_blob,
)

DIGEST_ONLY = "prod pushes must use digest references, not mutable tags"
EXPIRED = "bob's prod access expired"
ADMIN_TOOL = "admins must use admin-tool"

ACCESS_CONTROL: dict[str, Any] = {
    "repositories": {
        "**": {"defaultPolicy": ["read"]},
        "prod/**": {
            "policies": [
                {
                    "users": ["alice"],
                    "actions": ["read", "create", "update"],
                    "conditions": [
                        {
                            "expression": 'req.time < timestamp("2099-12-31T23:59:59Z")',
                            "message": "alice's prod access expires end of 2099",
                        },
                        # Blob uploads have no reference ("" type): only tags are refused.
                        {"expression": 'req.referenceType != "tag"', "message": DIGEST_ONLY},
                    ],
                },
                {
                    "users": ["bob"],
                    "actions": ["read", "create"],
                    "conditions": [
                        {
                            "expression": 'req.time < timestamp("2000-01-01T00:00:00Z")',
                            "message": EXPIRED,
                        }
                    ],
                },
                {
                    "groups": ["devs"],
                    "actions": ["read"],
                    "conditions": [
                        {
                            "expression": '"devs" in req.user.groups && req.action == "read"'
                            ' && req.method in ["GET", "HEAD"] && !req.auth.anonymous',
                            "message": "devs read with GET or HEAD",
                        }
                    ],
                },
            ]
        },
        "broken/**": {
            "policies": [
                # An evaluation error (no such key) and a result that is no boolean: the
                # policy does not grant, and the client is not told why.
                {
                    "users": ["alice"],
                    "actions": ["read"],
                    "conditions": [{"expression": "req.nope == 1", "message": "never shown"}],
                },
                {
                    "users": ["carol"],
                    "actions": ["read"],
                    "conditions": [{"expression": "req.repository", "message": "never shown"}],
                },
            ]
        },
        "xff/**": {
            "policies": [
                {
                    "users": ["dave"],
                    "actions": ["read", "create"],
                    "conditions": [
                        {
                            "expression": 'req.client.ip == "127.0.0.1"'
                            " && size(req.client.forwardedFor) > 0"
                            ' && req.client.forwardedFor[0].startsWith("192.0.2.")',
                            "message": "only through the proxy",
                        }
                    ],
                }
            ]
        },
    },
    "adminPolicy": {
        "users": ["root"],
        "actions": ["read", "create", "update", "delete"],
        "conditions": [
            {"expression": 'req.userAgent.startsWith("admin-tool/")', "message": ADMIN_TOOL},
            {"expression": "req.auth.admin && !req.tls.enabled", "message": "plain HTTP here"},
        ],
    },
    "groups": {"devs": {"users": ["carol"]}},
}

Step = tuple[str, int, str | None, str | None]  # label, status, error code, detail.reason


def seen(label: str, r: httpx.Response) -> Step:
    code = reason = None
    if r.headers.get("content-type", "").startswith("application/json") and r.content:
        doc = r.json()
        if isinstance(doc, dict) and doc.get("errors"):
            error = doc["errors"][0]
            code = error.get("code")
            detail = error.get("detail")
            reason = detail.get("reason") if isinstance(detail, dict) else None
    return (label, r.status_code, code, reason)


def sequence(c: httpx.Client) -> list[Step]:
    """The requests, in order; every answer reduced by `seen`."""
    steps: list[Step] = []

    def step(label: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        r = send()
        steps.append(seen(label, r))
        return r

    alice, bob, carol, dave, root = (basic(u) for u in ("alice", "bob", "carol", "dave", "root"))
    admin_tool = {"User-Agent": "admin-tool/1.0"}
    config = encode_json({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex})
    layer, layer_digest = random_blob(256)
    body, digest = image_manifest(
        {**descriptor("application/vnd.oci.image.config.v1+json", config)},
        [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    )
    ctype = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}

    def put(repo: str, ref: str, auth: httpx.Auth, **headers: str) -> httpx.Response:
        return c.put(
            manifest_path(repo, ref), content=body, headers={**ctype, **headers}, auth=auth
        )

    def blob(repo: str, data: bytes, auth: httpx.Auth) -> httpx.Response:
        c.auth = auth
        try:
            return push_blob_monolithic(c, repo, data)
        finally:
            c.auth = None

    # alice: blobs (no reference) and a digest push are allowed, a tag push is not
    step("alice pushes the config blob", lambda: blob("prod/app", config, alice))
    step("alice pushes the layer blob", lambda: blob("prod/app", layer, alice))
    step("alice pushes a tag", lambda: put("prod/app", "v1", alice))
    step("alice pushes by digest", lambda: put("prod/app", digest, alice))
    step("alice pulls by digest", lambda: c.get(manifest_path("prod/app", digest), auth=alice))
    step("alice pulls a blob", lambda: c.get(f"/v2/prod/app/blobs/{layer_digest}", auth=alice))
    step("alice lists tags", lambda: c.get("/v2/prod/app/tags/list", auth=alice))
    # bob: the time condition is false
    step("bob pulls by digest", lambda: c.get(manifest_path("prod/app", digest), auth=bob))
    step("bob pushes a blob", lambda: blob("prod/app", random_blob(32)[0], bob))
    # carol: her group's policy, with the method in the condition
    step("carol pulls", lambda: c.get(manifest_path("prod/app", digest), auth=carol))
    step("carol heads", lambda: c.head(manifest_path("prod/app", digest), auth=carol))
    step("carol pushes a tag", lambda: put("prod/app", "v2", carol))
    # dave: named by no prod/ policy; defaultPolicy of ** does not apply under prod/**
    step("dave pulls prod", lambda: c.get(manifest_path("prod/app", digest), auth=dave))
    step("anonymous pulls prod", lambda: c.get(manifest_path("prod/app", digest)))
    # root: the admin grant, gated on the User-Agent
    step("root pushes a tag", lambda: put("prod/app", "v1", root))
    step("root pushes a tag with admin-tool", lambda: put("prod/app", "v1", root, **admin_tool))
    # the tag exists now: alice's push would be an update, still refused for a tag
    step("alice overwrites the tag", lambda: put("prod/app", "v1", alice))
    step("alice pulls the tag", lambda: c.get(manifest_path("prod/app", "v1"), auth=alice))
    step("root deletes", lambda: c.delete(manifest_path("prod/app", "v1"), auth=root))
    # evaluation errors and non-boolean results: refused, no reason
    step("alice reads broken", lambda: c.get("/v2/broken/x/tags/list", auth=alice))
    step("carol reads broken", lambda: c.get("/v2/broken/x/tags/list", auth=carol))
    # X-Forwarded-For
    xff = "/v2/xff/x/tags/list"
    step("dave reads xff directly", lambda: c.get(xff, auth=dave))
    via = {"X-Forwarded-For": "192.0.2.9, 10.0.0.1"}
    step("dave reads xff via the proxy", lambda: c.get(xff, auth=dave, headers=via))
    other = {"X-Forwarded-For": "198.51.100.1"}
    step("dave reads xff via another", lambda: c.get(xff, auth=dave, headers=other))
    # the catalog does not evaluate conditions (zot's): bob still sees prod/app
    r = step("bob's catalog", lambda: c.get("/v2/_catalog", auth=bob))
    steps.append(("bob's catalog lists", 0, None, ",".join(r.json().get("repositories", []))))
    path = manifest_path("prod/app", digest)
    step("root deletes with admin-tool", lambda: c.delete(path, auth=root, headers=admin_tool))
    return steps
