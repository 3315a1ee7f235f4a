"""A storage root written by other tools (zot, skopeo, umoci) is served as it is."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx

from tests.clients.layout import (
    OCI_INDEX,
    Layout,
    add_image,
    build_image_layout,
    build_index_layout,
    sha256_digest,
)
from tests.process.helpers import cpu_seconds, serving_processes
from tests.support.oci import absent_digest
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


def test_digests_inside_the_stored_indexes_are_looked_for_once_per_index_json(
    tmp_path: Path,
) -> None:
    """A digest that index.json does not list is looked for inside every stored image index
    (a tool's layout lists only its indexes). Clients HEAD digests before they push them:
    that look reads the indexes once per version of index.json, not on every request, so
    with 1,000 indexes a HEAD of an absent digest costs about what one of a tag does."""
    layout = Layout(tmp_path / "root" / "many")
    manifest, _ = add_image(layout, random.Random(4), layers=1)
    child = manifest.as_json(platform={"architecture": "amd64", "os": "linux"})
    for i in range(1000):
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}
        index = layout.add_json(doc | {"annotations": {"n": str(i)}}, OCI_INDEX)
        layout.refs.append(index.as_json(annotations={REF_NAME: f"v{i}"}))
    layout.tag(index, "last")  # writes index.json once, with every ref

    config = base_config(tmp_path / "root", workers=1)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        (worker,) = serving_processes(proc)
        # found inside the indexes (the lookup being measured still finds what it should)
        assert c.head(f"/v2/many/manifests/{manifest.digest}").status_code == 200

        def cost(reference: str, status: int) -> float:
            before = cpu_seconds(worker)
            for _ in range(200):
                assert c.head(f"/v2/many/manifests/{reference}").status_code == status
            return cpu_seconds(worker) - before

        tagged = cost("v1", 200)
        absent = cost(absent_digest(), 404)
        # 200 walks of 1,000 indexes cost ~7 s; one walk and 200 looks ~0.1 s more than tags
        assert absent < 2 * tagged + 0.5, f"{absent:.2f} s against {tagged:.2f} s for tags"


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
