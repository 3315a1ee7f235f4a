"""Images pulled through the cache only by digest (`podman pull host/repo@sha256:...`, a
multi-arch child fetched on its own) have no tag here, as in zot; unlike zot's default they
are kept by garbage collection (`io.ocireg.keep`), so the cache still serves them once the
upstream is gone. An image that merely lost its tag is collected as usual."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx

from tests.ops.conftest import run_gc
from tests.support.oci import (
    OCI_INDEX,
    Image,
    assert_error,
    assert_image_pulls,
    image_index,
    push_artifact,
    push_image,
    push_manifest,
    unique_repo,
)
from tests.support.server import RegistryProcess, wait_until
from tests.sync.conftest import docker_registry, mirror
from tests.sync.test_on_demand import ACCEPT

DEST = "cache"


def stored(proc: RegistryProcess, repo: str, digest: str) -> bool:
    index = proc.root / f"{DEST}/{repo}" / "index.json"
    return index.exists() and digest in index.read_text()


def local(image: Image) -> Image:
    return dataclasses.replace(image, repo=f"{DEST}/{image.repo}")


def test_images_pulled_by_digest_survive_gc_and_the_upstream(tmp_path: Path) -> None:
    single, multi, moving = (f"library/{unique_repo(n)}" for n in ("single", "multi", "moving"))
    with docker_registry(tmp_path / "up") as up_server:
        with httpx.Client(base_url=up_server.url, timeout=30) as up:
            image = push_image(up, single, "v1", layers=2)
            sbom = push_artifact(up, single, image, "application/vnd.example.sbom")
            amd, arm = push_image(up, multi), push_image(up, multi)
            body, index_digest = image_index(
                [
                    amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
                    arm.descriptor(platform={"architecture": "arm64", "os": "linux"}),
                ]
            )
            assert push_manifest(up, multi, "v1", body, OCI_INDEX).status_code == 201
            old = push_image(up, moving, "latest")
        entry = {
            "urls": [up_server.url],
            "onDemand": True,
            "content": [{"prefix": "**", "destination": f"/{DEST}"}],
        }
        with (
            mirror(tmp_path / "mirror", [entry], storage={"gcDelay": "1s"}) as proc,
            httpx.Client(base_url=proc.url, timeout=30) as c,
        ):
            # By digest only: one image, and an index (every platform comes with it).
            assert_image_pulls(c, local(image), image.digest)
            r = c.get(f"/v2/{DEST}/{multi}/manifests/{index_digest}", headers=ACCEPT)
            assert r.status_code == 200 and r.content == body
            wait_until(lambda: stored(proc, single, image.digest))
            # A referrer pulled by digest lives as long as its subject: not marked.
            r = c.get(f"/v2/{DEST}/{single}/manifests/{sbom.digest}", headers=ACCEPT)
            assert r.status_code == 200 and r.content == sbom.manifest
            wait_until(lambda: stored(proc, single, sbom.digest))
            wait_until(lambda: stored(proc, multi, index_digest))
            assert c.get(f"/v2/{DEST}/{single}/tags/list").json()["tags"] in ([], None)
            # The control: an image pulled by tag, then left untagged by the tag's move.
            assert c.get(f"/v2/{DEST}/{moving}/manifests/latest", headers=ACCEPT).status_code == 200
            wait_until(lambda: stored(proc, moving, old.digest))
            with httpx.Client(base_url=up_server.url, timeout=30) as up:
                new = push_image(up, moving, "latest")
            r = c.get(f"/v2/{DEST}/{moving}/manifests/latest", headers=ACCEPT)
            assert r.headers["docker-content-digest"] == new.digest
            wait_until(lambda: stored(proc, moving, new.digest))

            # Stored last, the control is collectable once gcDelay has passed for everything.
            def control_collectable() -> bool:
                report = run_gc(proc.config_path, dry_run=True).get(f"{DEST}/{moving}")
                return report is not None and old.digest in report["manifests"]

            wait_until(control_collectable, timeout=30, interval=0.2)
            reports = run_gc(proc.config_path)
            assert reports[f"{DEST}/{moving}"]["manifests"] == [old.digest]
            for repo in (single, multi):
                assert reports[f"{DEST}/{repo}"]["manifests"] == [], reports
                assert reports[f"{DEST}/{repo}"]["blobs"] == [], reports
            index = json.loads((proc.root / DEST / single / "index.json").read_text())
            assert {m["digest"]: m.get("annotations") for m in index["manifests"]} == {
                image.digest: {"io.ocireg.keep": "pulled by digest through sync"},
                sbom.digest: None,
            }

            up_server.stop()
            # Served from the cache alone: the image, the index and each of its platforms.
            assert_image_pulls(c, local(image), image.digest)
            r = c.get(f"/v2/{DEST}/{single}/manifests/{sbom.digest}", headers=ACCEPT)
            assert r.status_code == 200 and r.content == sbom.manifest
            r = c.get(f"/v2/{DEST}/{multi}/manifests/{index_digest}", headers=ACCEPT)
            assert r.status_code == 200 and r.content == body
            for child in (amd, arm):
                assert_image_pulls(c, local(child), child.digest)
            # The collected control is gone, and its upstream with it.
            r = c.get(f"/v2/{DEST}/{moving}/manifests/{old.digest}", headers=ACCEPT)
            assert_error(r, 503, "UNAVAILABLE")
