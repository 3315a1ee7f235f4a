"""Three members over one root: uploads spread over members, forged and genuine hops."""

from __future__ import annotations

import time

import httpx

from ocireg.cluster.proof import derive_key, sign
from ocireg.identity import ANONYMOUS
from tests.support.cluster import HASH_KEY, repo_owned_by
from tests.support.oci import (
    OCI_MANIFEST,
    assert_error,
    blob_path,
    chunks_of,
    manifest_path,
    push_image,
    random_blob,
    uploads_path,
)
from tests.support.server import RegistryProcess, wait_until

HOP = "X-Zot-Cluster-Hop-Count"


def _client(member: RegistryProcess) -> httpx.Client:
    return httpx.Client(base_url=member.url, timeout=30.0)


def test_chunked_upload_through_three_members(shared_root: list[RegistryProcess]) -> None:
    """POST via member 0, PATCHes via 2 and 1, PUT via 0; the owner is member 1."""
    repo = repo_owned_by(1, prefix="shared/chunked")
    data, digest = random_blob(3 * 400_000 + 17)
    parts = chunks_of(data, 400_000)
    clients = [_client(m) for m in shared_root]
    try:
        r = clients[0].post(uploads_path(repo), headers={"Content-Length": "0"})
        assert r.status_code == 202, r.text
        location = r.headers["location"]
        offset = 0
        for i, part in enumerate(parts):
            via = clients[[2, 1, 2, 0][i]]
            r = via.patch(
                location,
                content=part,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(part) - 1}",
                    "Content-Length": str(len(part)),
                },
            )
            assert r.status_code == 202, r.text
            offset += len(part)
            assert r.headers["range"] == f"0-{offset - 1}"
            location = r.headers["location"]
        r = clients[0].put(location, params={"digest": digest}, headers={"Content-Length": "0"})
        assert r.status_code == 201, r.text
        assert r.headers["docker-content-digest"] == digest
        for c in clients:
            got = c.get(blob_path(repo, digest))
            assert got.status_code == 200
            assert got.content == data
            head = c.head(blob_path(repo, digest))
            assert head.status_code == 200
            assert head.headers["content-length"] == str(len(data))
            assert head.content == b""
    finally:
        for c in clients:
            c.close()


def test_forged_hop_header_is_ignored(shared_root: list[RegistryProcess]) -> None:
    """A client's hop header, with no proof or a bogus one, is routed like any request."""
    repo = repo_owned_by(1, prefix="shared/forged")
    with _client(shared_root[1]) as owner:
        image = push_image(owner, repo, "v1")
    forged: list[dict[str, str | bytes]] = [
        {HOP: "1"},
        {HOP: "7", "X-Ocireg-Cluster-Proof": "v1:1:00:00"},
        {
            HOP: "1",
            "X-Ocireg-Cluster-Proof": f"v1:{time.time():.3f}:{'0' * 32}:{'ab' * 32}",
            "X-Ocireg-Cluster-Identity": "eyJ1c2VyIjoiYWRtaW4ifQ==",
        },
        {"X-Ocireg-Cluster-Identity": "eyJ1c2VyIjoiYWRtaW4ifQ=="},
        {HOP: "not-a-number", "X-Ocireg-Cluster-Proof": b"\xff\xfe"},
    ]
    for member in shared_root:  # the non-owners forward it, the owner answers it
        with _client(member) as client:
            for headers in forged:
                r = client.get(
                    manifest_path(repo, "v1"), headers={**headers, "Accept": OCI_MANIFEST}
                )
                assert r.status_code == 200, (member.name, headers, r.text)
                assert r.content == image.manifest
                missing = client.get(manifest_path(repo, "nope"), headers=headers)
                assert_error(missing, 404, "MANIFEST_UNKNOWN")
            assert client.get("/livez").status_code == 200


def test_a_genuine_proof_is_single_use(separate_roots: list[RegistryProcess]) -> None:
    """With separate storage a valid proof at a non-owner is a loop (508); the same proof
    again is a replay, so the request is treated as a client's and forwarded to the owner
    normally. (On shared storage the non-owner would answer it itself.)"""
    repo = repo_owned_by(1, prefix="shared/replay")
    member0 = separate_roots[0]
    target = member0.config["cluster"]["members"][0]
    path = manifest_path(repo, "v1")
    hop = sign(derive_key(HASH_KEY.encode()), "GET", path, b"", target, ANONYMOUS)
    headers = {
        HOP: "1",
        "X-Ocireg-Cluster-Proof": hop.proof.decode(),
        "X-Ocireg-Cluster-Identity": hop.identity.decode(),
    }
    with _client(member0) as client:
        first = client.get(path, headers=headers)
        err = assert_error(first, 508, "LOOP_DETECTED")
        assert err["detail"]["owner"] == separate_roots[1].config["cluster"]["members"][1]
        replay = client.get(path, headers=headers)
        assert_error(replay, 404, "MANIFEST_UNKNOWN")  # answered by the owner


def test_explicit_zero_content_length_and_empty_bodies_pass_through(
    shared_root: list[RegistryProcess],
) -> None:
    repo = repo_owned_by(2, prefix="shared/empty")
    with _client(shared_root[0]) as client:
        r = client.post(uploads_path(repo), headers={"Content-Length": "0"})
        assert r.status_code == 202, r.text
        empty_digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        r = client.put(
            r.headers["location"],
            params={"digest": empty_digest},
            headers={"Content-Length": "0"},
        )
        assert r.status_code == 201, r.text
        r = client.get(blob_path(repo, empty_digest))
        assert r.status_code == 200
        assert r.content == b""


def test_forwarded_request_keeps_its_request_id(shared_root: list[RegistryProcess]) -> None:
    """The receiving member's request id (its own, none was sent) is the owner's too. (An
    index write: on shared storage reads are answered without a hop.)"""
    repo = repo_owned_by(2, prefix="shared/trace")
    with _client(shared_root[0]) as c:
        r = c.delete(manifest_path(repo, "v1"))
    assert r.status_code == 404
    rid = r.headers["x-request-id"]

    def logged_by_both() -> bool:
        return rid in shared_root[0].logs() and rid in shared_root[2].logs()

    wait_until(logged_by_both, timeout=10)
