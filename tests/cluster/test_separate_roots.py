"""Three members with separate roots: data lands only on the owner, every member serves it."""

from __future__ import annotations

import httpx

from tests.support.cluster import repo_owned_by
from tests.support.oci import OCI_MANIFEST, blob_path, manifest_path, push_image, sha256_digest
from tests.support.server import RegistryProcess


def test_push_through_any_member_lands_on_the_owner_and_every_member_serves_it(
    separate_roots: list[RegistryProcess],
) -> None:
    members = separate_roots
    for owner in range(3):
        for entry in range(3):
            repo = repo_owned_by(owner, prefix=f"sep/o{owner}e{entry}")
            with httpx.Client(base_url=members[entry].url, timeout=30.0) as client:
                image = push_image(client, repo, "v1", layers=2, layer_size=300_000)
            on_disk = [(m.root / repo / "index.json").exists() for m in members]
            assert on_disk == [i == owner for i in range(3)], (repo, owner, entry, on_disk)
            for reader in members:
                with httpx.Client(base_url=reader.url, timeout=30.0) as client:
                    r = client.get(manifest_path(repo, "v1"), headers={"Accept": OCI_MANIFEST})
                    assert r.status_code == 200, (reader.name, r.text)
                    assert r.content == image.manifest
                    assert r.headers["docker-content-digest"] == image.digest
                    layer = client.get(blob_path(repo, sha256_digest(image.layers[1])))
                    assert layer.status_code == 200
                    assert layer.content == image.layers[1]
                    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


def test_catalog_and_base_are_answered_locally(separate_roots: list[RegistryProcess]) -> None:
    repo = repo_owned_by(2, prefix="sep/catalog")
    with httpx.Client(base_url=separate_roots[0].url, timeout=30.0) as client:
        push_image(client, repo, "latest")
        assert client.get("/v2/").status_code == 200
        # With separate roots each member lists what it holds: the owner's root has it.
        assert repo not in client.get("/v2/_catalog", params={"n": 1000}).json()["repositories"]
    with httpx.Client(base_url=separate_roots[2].url, timeout=30.0) as client:
        assert repo in client.get("/v2/_catalog", params={"n": 1000}).json()["repositories"]
