"""Auth through a cluster: the member that receives a request authenticates it, the identity
travels signed to the repository's owner, and the owner authorizes it. Members talk HTTPS
and require client certificates.

The owner's htpasswd file deliberately lacks alice: if the owner authenticated again, her
forwarded requests would fail; they succeed because it trusts the signed identity.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, SERVICE, TokenServer, basic, write_htpasswd
from tests.support.cluster import cluster_configs, repo_owned_by
from tests.support.oci import assert_error, manifest_path, push_image, push_manifest
from tests.support.pki import TestCA
from tests.support.server import RegistryProcess, wait_until

REALM = "cluster-auth"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[tuple[list[RegistryProcess], ssl.SSLContext]]:
    workdir = tmp_path_factory.mktemp("cluster-auth")
    ca = TestCA(workdir / "pki")
    member = ca.issue("member", "member")
    client = ca.issue("client", "client", server=False)
    tls = {"cert": str(member.cert), "key": str(member.key), "cacert": str(ca.files.cert)}
    everyone = write_htpasswd(workdir / "all.htpasswd", PASSWORDS)
    without_alice = write_htpasswd(
        workdir / "no-alice.htpasswd", {u: p for u, p in PASSWORDS.items() if u != "alice"}
    )
    configs: list[dict[str, Any]] = cluster_configs(workdir, count=2)
    for i, cfg in enumerate(configs):
        cfg["http"]["tls"] = tls
        cfg["cluster"]["tls"] = tls
        cfg["http"]["realm"] = REALM
        cfg["http"]["auth"] = {
            "htpasswd": {"path": str(everyone if i == 0 else without_alice)},
            "bearer": {
                "realm": token_server.realm,
                "service": SERVICE,
                "cert": str(token_server.files.cert),
            },
        }
        cfg["http"]["accessControl"] = {
            "repositories": {
                "team/**": {
                    "policies": [
                        {"users": ["alice"], "actions": ["read", "create"]},
                        {"users": ["bob"], "actions": ["read", "create", "update", "delete"]},
                    ]
                },
            },
            "adminPolicy": {"users": ["root"], "actions": ["read", "create", "update", "delete"]},
        }
    trusted = ssl.create_default_context(cafile=str(ca.files.cert))
    trusted.load_cert_chain(str(client.cert), str(client.key))
    members = [
        RegistryProcess(workdir, cfg, name=f"member{i}").start(wait=False)
        for i, cfg in enumerate(configs)
    ]
    try:
        for proc in members:
            wait_until(lambda m=proc: httpx.get(f"{m.url}/livez", verify=trusted).is_success)
        yield members, trusted
    finally:
        for proc in members:
            proc.stop()


def via_member0(
    cluster: tuple[list[RegistryProcess], ssl.SSLContext], user: str | None = None
) -> httpx.Client:
    members, trusted = cluster
    return httpx.Client(
        base_url=members[0].url, verify=trusted, timeout=30, auth=basic(user) if user else None
    )


def owned_by_member1(prefix: str) -> str:
    name: str = repo_owned_by(1, count=2, prefix=prefix)
    return name


def test_policies_apply_through_a_non_owner_member(
    cluster: tuple[list[RegistryProcess], ssl.SSLContext],
) -> None:
    repo = owned_by_member1("team")
    with via_member0(cluster, "alice") as alice, via_member0(cluster, "bob") as bob:
        first = push_image(alice, repo, "v1")  # create, decided by the owner
        assert alice.get(manifest_path(repo, "v1")).content == first.manifest
        second = push_image(alice, repo)
        assert_error(push_manifest(alice, repo, "v1", second.manifest), 403, "DENIED")
        assert push_manifest(bob, repo, "v1", second.manifest).status_code == 201
        assert_error(alice.delete(manifest_path(repo, "v1")), 403, "DENIED")
        assert bob.delete(manifest_path(repo, "v1")).status_code == 202
    members, _ = cluster
    assert '"method": "PUT"' in members[1].logs()  # the owner served the writes


def test_anonymous_and_bad_credentials_through_a_non_owner_member(
    cluster: tuple[list[RegistryProcess], ssl.SSLContext],
) -> None:
    repo = owned_by_member1("team")
    with via_member0(cluster, "root") as root:
        push_image(root, repo, "v1")
    with via_member0(cluster) as anonymous:
        r = anonymous.get(manifest_path(repo, "v1"))
        assert_error(r, 401, "UNAUTHORIZED")
        # With bearer configured, the challenge is Bearer and names the scope needed.
        assert f'scope="repository:{repo}:pull"' in r.headers["www-authenticate"]
    members, trusted = cluster
    with httpx.Client(
        base_url=members[0].url, verify=trusted, timeout=30, auth=("alice", "wrong")
    ) as wrong:
        assert_error(wrong.get(manifest_path(repo, "v1")), 401, "UNAUTHORIZED")
    with via_member0(cluster, "carol") as carol:  # authenticated, named by no policy
        assert_error(carol.get(manifest_path(repo, "v1")), 403, "DENIED")


def test_bearer_token_scope_is_checked_by_the_owner(
    cluster: tuple[list[RegistryProcess], ssl.SSLContext], token_server: TokenServer
) -> None:
    repo, other = owned_by_member1("tok"), owned_by_member1("tok")
    grant = [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    members, trusted = cluster
    headers = {"Authorization": f"Bearer {token_server.mint('carol', grant)}"}
    with httpx.Client(
        base_url=members[0].url, verify=trusted, timeout=30, headers=headers
    ) as client:
        image = push_image(client, repo, "v1")
        assert client.get(manifest_path(repo, "v1")).content == image.manifest
        r = client.get(manifest_path(other, "v1"))
        assert_error(r, 401, "UNAUTHORIZED")
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
