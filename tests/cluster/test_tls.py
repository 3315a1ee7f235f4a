"""Members over HTTPS that require client certificates, the proxy presenting its own."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from tests.support.cluster import cluster_configs, repo_owned_by
from tests.support.oci import OCI_MANIFEST, manifest_path, push_image
from tests.support.pki import TestCA
from tests.support.server import RegistryProcess, wait_until


def test_members_over_https_with_client_certificates(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    ca_path = str(ca.files.cert)
    member_pki = ca.issue("member", "member")  # serves HTTPS and is the client of other members
    member_cert, member_key = str(member_pki.cert), str(member_pki.key)
    client = ca.issue("client", "client", server=False)
    client_cert, client_key = str(client.cert), str(client.key)

    configs = cluster_configs(tmp_path, count=3)
    for cfg in configs:
        cfg["http"]["tls"] = {"cert": member_cert, "key": member_key, "cacert": ca_path}
        cfg["cluster"]["tls"] = {"cert": member_cert, "key": member_key, "cacert": ca_path}
    trusted = ssl.create_default_context(cafile=ca_path)
    trusted.load_cert_chain(client_cert, client_key)
    members = _start(tmp_path, configs, trusted)
    try:
        _push_through_a_member(members, trusted)
        # Without a client certificate the member refuses the handshake.
        no_cert = ssl.create_default_context(cafile=ca_path)
        try:
            httpx.get(f"{members[0].url}/livez", verify=no_cert)
            refused = False
        except httpx.HTTPError:
            refused = True
        assert refused
    finally:
        for member in members:
            member.stop()


def test_members_over_https_with_only_the_ca_as_in_zots_example(tmp_path: Path) -> None:
    """zot's examples/scale-out-cluster-cloud/tls: `cluster.tls` has only `cacert` (members
    do not ask for client certificates); a member verifies the owner with it."""
    ca = TestCA(tmp_path / "pki")
    ca_path = str(ca.files.cert)
    member_pki = ca.issue("member", "member")
    configs = cluster_configs(tmp_path, count=3)
    for cfg in configs:
        cfg["http"]["tls"] = {"cert": str(member_pki.cert), "key": str(member_pki.key)}
        cfg["cluster"]["tls"] = {"cacert": ca_path}
    trusted = ssl.create_default_context(cafile=ca_path)
    members = _start(tmp_path, configs, trusted)
    try:
        _push_through_a_member(members, trusted)
    finally:
        for member in members:
            member.stop()


def _start(
    tmp_path: Path, configs: list[dict[str, Any]], trusted: ssl.SSLContext
) -> list[RegistryProcess]:
    members = [
        RegistryProcess(tmp_path, cfg, name=f"member{i}").start(wait=False)
        for i, cfg in enumerate(configs)
    ]
    for member in members:
        wait_until(lambda m=member: httpx.get(f"{m.url}/livez", verify=trusted).is_success)
    return members


def _push_through_a_member(members: list[RegistryProcess], trusted: ssl.SSLContext) -> None:
    """A push through member 0 of a repository member 2 owns, read back through member 1:
    the index write went to the owner over HTTPS."""
    repo = repo_owned_by(2, prefix="tls")
    with httpx.Client(base_url=members[0].url, verify=trusted, timeout=30.0) as client:
        image = push_image(client, repo, "v1", layer_size=200_000)
    assert (members[0].root / repo / "index.json").exists()  # one shared root
    with httpx.Client(base_url=members[1].url, verify=trusted, timeout=30.0) as client:
        r = client.get(manifest_path(repo, "v1"), headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content == image.manifest
    # The owner's access log shows the requests came to it from a member, over TLS.
    assert '"method": "PUT"' in members[2].logs()
