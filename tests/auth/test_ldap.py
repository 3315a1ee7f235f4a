"""`http.auth.ldap` (zot's keys) against a real directory (Debian's slapd): users found by
`userAttribute` under `baseDN` with the service account of `credentialsFile`, their password
checked by binding as them, their groups from `userGroupAttribute` used by
`http.accessControl`; plain LDAP, StartTLS and LDAPS; htpasswd beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import write_htpasswd
from tests.support.backends import running_slapd
from tests.support.ldap import ACCESS, EXPECTED, answers, fill_directory, ldap_keys
from tests.support.oci import push_small_image
from tests.support.pki import TestCA
from tests.support.server import base_config, running_registry


def test_directory_users_and_their_groups(tmp_path: Path) -> None:
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)
        # one worker: what it remembered is what the end of the test looks at
        config = base_config(tmp_path / "root", workers=1)
        config["http"]["auth"] = {"ldap": ldap_keys(slapd, tmp_path, subtreeSearch=True)}
        config["http"]["accessControl"] = ACCESS
        with running_registry(tmp_path, config) as proc:
            assert answers(proc.url) == EXPECTED
            # Verified credentials are remembered for a while: with the directory gone alice
            # still reads; erin, in the directory but never verified, cannot log in.
            slapd.add_user("erin", "enigma", departmentNumber=["devs"])
            slapd.stop()
            with httpx.Client(base_url=proc.url, auth=("alice", "wonderland")) as c:
                assert c.get("/v2/devs/app/tags/list").json()["tags"] == ["v1"]
            with httpx.Client(base_url=proc.url, auth=("erin", "enigma")) as c:
                assert c.get("/v2/devs/app/tags/list").status_code == 401
            assert "LDAP check failed" in proc.log_path.read_text()


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_the_directory_over_tls(tmp_path: Path, mode: str) -> None:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("slapd", "127.0.0.1", client=False)
    with running_slapd(tmp_path, tls=(server.cert, server.key)) as slapd:
        fill_directory(slapd)
        keys: dict[str, Any] = {"caCert": str(ca.files.cert), "subtreeSearch": True}
        if mode == "starttls":
            keys |= {"startTLS": True}
        else:
            keys |= {"insecure": False, "port": slapd.ldaps_port}
        config = base_config(tmp_path / "root")
        config["http"]["auth"] = {"ldap": ldap_keys(slapd, tmp_path, **keys)}
        config["http"]["accessControl"] = ACCESS
        with running_registry(tmp_path, config) as proc:
            assert answers(proc.url) == EXPECTED


def test_htpasswd_first_then_the_directory(tmp_path: Path) -> None:
    """With both, a user of the htpasswd file logs in by it (zot's order), anyone else
    through the directory; the groups of `accessControl.groups` apply to both."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", {"dave": "local"})
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)
        config = base_config(tmp_path / "root")
        config["http"]["auth"] = {
            "htpasswd": {"path": str(htpasswd)},
            "ldap": ldap_keys(slapd, tmp_path, subtreeSearch=True),
        }
        access: dict[str, Any] = json.loads(json.dumps(ACCESS))
        access["groups"] = {"devs": {"users": ["dave", "bob"]}}
        config["http"]["accessControl"] = access
        with running_registry(tmp_path, config) as proc:
            for user, password in (("dave", "local"), ("bob", "builder"), ("alice", "wonderland")):
                with httpx.Client(base_url=proc.url, auth=(user, password)) as c:
                    assert push_small_image(c, "devs/app", user)[0].status_code == 201, user


def test_a_group_attribute_the_directory_does_not_know_gives_no_groups(tmp_path: Path) -> None:
    """`userGroupAttribute: memberOf` on a directory without the memberof overlay: the user
    logs in, with no groups from the directory (as zot), and is denied what the group
    would allow rather than refused as unknown."""
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)
        config = base_config(tmp_path / "root")
        keys = ldap_keys(slapd, tmp_path, subtreeSearch=True, userGroupAttribute="memberOf")
        config["http"]["auth"] = {"ldap": keys}
        config["http"]["accessControl"] = ACCESS
        alice = ("alice", "wonderland")
        with (
            running_registry(tmp_path, config) as proc,
            httpx.Client(base_url=proc.url, auth=alice) as c,
        ):
            assert c.get("/v2/").status_code == 200
            assert c.post("/v2/devs/app/blobs/uploads/").status_code == 403


def test_a_referral_is_not_followed_with_the_service_account(tmp_path: Path) -> None:
    """An entry under baseDN that refers to another directory: the search does not follow
    it, so the service account's password never goes to the host it names (zot follows no
    referrals either); the user is not found there."""
    with (
        running_slapd(tmp_path / "elsewhere", log_binds=True) as elsewhere,
        running_slapd(tmp_path) as slapd,
    ):
        fill_directory(slapd)
        referral = f"ou=elsewhere,ou=people,{slapd.BASE}"
        slapd.add(
            referral,
            ["referral", "extensibleObject"],
            {"ou": "elsewhere", "ref": f"ldap://127.0.0.1:{elsewhere.port}/{elsewhere.BASE}"},
        )
        config = base_config(tmp_path / "root")
        config["http"]["auth"] = {"ldap": ldap_keys(slapd, tmp_path, baseDN=referral)}
        alice = ("alice", "wonderland")
        with (
            running_registry(tmp_path, config) as proc,
            httpx.Client(base_url=proc.url, auth=alice) as c,
        ):
            assert c.get("/v2/").status_code == 401
        assert "cn=reader" not in (elsewhere.workdir / "slapd.log").read_text()
