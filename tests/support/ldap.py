"""A directory (Debian's slapd, `tests.support.backends.Slapd`) with the users the LDAP
tests log in as, zot's `http.auth.ldap` keys for it, and the pushes whose answers tell who
may do what: for a test against ocireg and one comparing it with zot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.backends import Slapd
from tests.support.oci import push_small_image

ACCESS = {
    "repositories": {
        "devs/**": {"policies": [{"groups": ["devs"], "actions": ["read", "create", "update"]}]},
        "**": {"policies": [{"users": ["nobody"], "actions": ["read"]}]},
    }
}


def fill_directory(slapd: Slapd) -> None:
    slapd.add_user("alice", "wonderland", departmentNumber=["devs", "ops"])
    slapd.add_user("bob", "builder")
    service = "cn=reader,dc=example,dc=org"
    slapd.add(
        service,
        ["organizationalRole", "simpleSecurityObject"],
        {"cn": "reader", "userPassword": "r3ad"},
    )


def ldap_keys(slapd: Slapd, tmp_path: Path, **keys: Any) -> dict[str, Any]:
    credentials = tmp_path / "ldap-credentials.json"
    credentials.write_text(
        json.dumps({"bindDN": "cn=reader,dc=example,dc=org", "bindPassword": "r3ad"})
    )
    return {
        "address": "127.0.0.1",
        "port": slapd.port,
        "insecure": True,
        "baseDN": f"ou=people,{slapd.BASE}",
        "userAttribute": "uid",
        "userGroupAttribute": "departmentNumber",
        "credentialsFile": str(credentials),
        **keys,
    }


def answers(url: str) -> list[tuple[str, int]]:
    """Who may push where: the answer to each push (or to its first upload)."""
    found = []
    for auth, repo in (
        (("alice", "wonderland"), "devs/app"),  # in the group devs: allowed
        (("alice", "wonderland"), "other/app"),  # no rule for her there: denied
        (("alice", "bad"), "devs/app"),
        (("bob", "builder"), "devs/app"),  # in no group
        (("carol", "x"), "devs/app"),  # not in the directory
        (None, "devs/app"),
    ):
        with httpx.Client(base_url=url, auth=auth) as c:
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            if r.status_code == 202:
                r = push_small_image(c, repo, "v1")[0]
            found.append((f"{auth and auth[0]} {repo}", r.status_code))
    return found


EXPECTED = [
    ("alice devs/app", 201),
    ("alice other/app", 403),
    ("alice devs/app", 401),
    ("bob devs/app", 403),
    ("carol devs/app", 401),
    ("None devs/app", 401),
]
