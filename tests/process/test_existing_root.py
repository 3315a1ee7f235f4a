"""A storage root written by other tools (zot, skopeo, umoci) is served as it is."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.clients.layout import OCI_INDEX, build_image_layout, build_index_layout, sha256_digest
from tests.support.server import base_config, running_registry

REF_NAME = "org.opencontainers.image.ref.name"


def test_oci_layouts_written_by_tools_are_served_at_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    image = build_image_layout(root / "team" / "app", "v1", seed=1)
    index = build_index_layout(root / "multi", "latest", seed=2, arches=("amd64", "arm64"))
    # zot writes an empty repository's index.json with "manifests": null.
    (root / "empty").mkdir()
    (root / "empty" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "empty" / "index.json").write_text('{"schemaVersion":2,"manifests":null}')
    # zot's own files at the root are not repositories.
    (root / "cache.db").write_bytes(b"\0" * 16)
    (root / "_trivy").mkdir()

    config = base_config(root, workers=1)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert c.get("/v2/_catalog").json() == {"repositories": ["empty", "multi", "team/app"]}
        r = c.get("/v2/team/app/manifests/v1")
        assert r.status_code == 200
        assert r.headers["docker-content-digest"] == image.digest
        assert sha256_digest(r.content) == image.digest

        r = c.get("/v2/multi/manifests/latest")
        assert r.status_code == 200
        assert r.headers["content-type"] == OCI_INDEX
        assert r.headers["docker-content-digest"] == index.digest
        for child in json.loads(r.content)["manifests"]:
            # Only the index is named in index.json; its children are found through it.
            got = c.get(f"/v2/multi/manifests/{child['digest']}")
            assert got.status_code == 200, got.text
            assert sha256_digest(got.content) == child["digest"]
            config_digest = json.loads(got.content)["config"]["digest"]
            assert c.head(f"/v2/multi/blobs/{config_digest}").status_code == 200

        assert c.get("/v2/empty/tags/list").json() == {"name": "empty", "tags": []}


def test_tags_zot_stored_outside_the_grammar_are_served_and_deleted(tmp_path: Path) -> None:
    """zot takes pushes to tags the spec's grammar refuses (`1.0+build`, `.hidden`, `a:b`)
    and lists them; served from its layout they can be read and deleted here too, and only
    a new push to one is refused."""
    root = tmp_path / "root"
    image = build_image_layout(root / "odd", "v1", seed=3)
    index_path = root / "odd" / "index.json"
    index = json.loads(index_path.read_text())
    [entry] = index["manifests"]
    odd = ["1.0+build", ".hidden", "a:b"]
    for tag in odd:
        index["manifests"].append(entry | {"annotations": {REF_NAME: tag}})
    index_path.write_text(json.dumps(index))

    config = base_config(root, workers=1)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert c.get("/v2/odd/tags/list").json()["tags"] == sorted(["v1", *odd])
        for tag in odd:
            for method in ("GET", "HEAD"):
                r = c.request(method, f"/v2/odd/manifests/{tag}")
                assert r.status_code == 200, (method, tag, r.text)
                assert r.headers["docker-content-digest"] == image.digest
        body = c.get("/v2/odd/manifests/v1").content
        put = c.put(
            "/v2/odd/manifests/2.0+build",
            content=body,
            headers={"Content-Type": json.loads(body)["mediaType"]},
        )
        assert put.status_code == 400 and put.json()["errors"][0]["code"] == "MANIFEST_INVALID"
        assert c.delete("/v2/odd/manifests/.hidden").status_code == 202
        assert c.get("/v2/odd/manifests/.hidden").status_code == 404
        assert c.get("/v2/odd/tags/list").json()["tags"] == sorted(["v1", "1.0+build", "a:b"])
        assert c.get(f"/v2/odd/manifests/{image.digest}").status_code == 200
