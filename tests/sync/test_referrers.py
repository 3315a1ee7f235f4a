"""Referrers follow the image they refer to: through the upstream's referrers API (a second
ocireg as the upstream) and through cosign-style tags (docker-registry, which has no API)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.oci import push_artifact, push_image, unique_repo
from tests.support.server import RegistryProcess, wait_until
from tests.sync.conftest import Upstream, mirror

SBOM = "application/vnd.example.sbom"
SIGNATURE = "application/vnd.example.signature"


def test_referrers_api_content_is_copied_with_the_image(
    ocireg_upstream: RegistryProcess, tmp_path: Path
) -> None:
    repo = unique_repo("signed")
    with httpx.Client(base_url=ocireg_upstream.url, timeout=30) as up:
        image = push_image(up, repo, "v1")
        sbom = push_artifact(up, repo, image, SBOM)
        signature = push_artifact(up, repo, sbom, SIGNATURE)  # a referrer of a referrer
    registries = [{"urls": [ocireg_upstream.url], "onDemand": True}]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        assert c.get(f"/v2/{repo}/manifests/v1").status_code == 200
        # The referrers are copied behind the answer.
        wait_until(lambda: c.get(f"/v2/{repo}/referrers/{sbom.digest}").json()["manifests"])
        r = c.get(f"/v2/{repo}/referrers/{image.digest}")
        assert r.status_code == 200
        assert [m["digest"] for m in r.json()["manifests"]] == [sbom.digest]
        assert r.json()["manifests"][0]["artifactType"] == SBOM
        r = c.get(f"/v2/{repo}/referrers/{sbom.digest}")
        assert [m["digest"] for m in r.json()["manifests"]] == [signature.digest]


def test_cosign_tags_are_copied_from_a_registry_without_the_api(
    upstream: Upstream, tmp_path: Path
) -> None:
    repo = unique_repo("cosign")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, repo, "v1")
        tag = image.digest.replace(":", "-") + ".sig"
        signature = push_image(up, repo, tag)
    registries = [{"urls": [upstream.url], "onDemand": True}]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        assert c.get(f"/v2/{repo}/manifests/v1").status_code == 200
        wait_until(lambda: tag in c.get(f"/v2/{repo}/tags/list").json().get("tags", []))
        # Already stored: served without another fetch.
        r = c.get(f"/v2/{repo}/manifests/{signature.digest}")
        assert r.status_code == 200 and r.content == signature.manifest
