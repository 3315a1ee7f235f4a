"""Periodic sync (a mirror): every pollInterval, the upstream's repositories that match the
content rules are listed and their new or moved tags that pass the filters are copied."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.oci import push_image, unique_repo
from tests.support.server import wait_until
from tests.sync.conftest import docker_registry, mirror


def test_new_and_moved_tags_that_pass_the_filters_are_mirrored(tmp_path: Path) -> None:
    with docker_registry(tmp_path / "up") as upstream:
        project = unique_repo("proj")
        with httpx.Client(base_url=upstream.url, timeout=30) as up:
            images = {
                tag: push_image(up, f"{project}/app", tag)
                for tag in ("1.0.0", "v2.1", "2.0.0-rc1", "latest", "nightly-3")
            }
            push_image(up, "elsewhere/app", "1.0.0")
            registries = [
                {
                    "urls": [upstream.url],
                    "pollInterval": "1s",
                    "content": [
                        {
                            "prefix": f"/{project}/**",
                            "destination": "/mirror",
                            "stripPrefix": True,
                            "tags": {"regex": "^v?[0-9]+", "excludeRegex": "-rc", "semver": True},
                        }
                    ],
                }
            ]
            with (
                mirror(tmp_path, registries) as proc,
                httpx.Client(base_url=proc.url, timeout=30) as c,
            ):

                def tags() -> list[str]:
                    r = c.get("/v2/mirror/app/tags/list")
                    return sorted(r.json()["tags"]) if r.status_code == 200 else []

                wait_until(lambda: tags() == ["1.0.0", "v2.1"], timeout=30)
                r = c.get("/v2/mirror/app/manifests/1.0.0")
                assert r.headers["docker-content-digest"] == images["1.0.0"].digest
                assert r.content == images["1.0.0"].manifest

                # A new tag and a moved one are picked up by a later pass.
                push_image(up, f"{project}/app", "3.0.0")
                moved = push_image(up, f"{project}/app", "1.0.0")
                wait_until(lambda: "3.0.0" in tags(), timeout=30)

                def digest_of_1() -> str:
                    return c.head("/v2/mirror/app/manifests/1.0.0").headers["docker-content-digest"]

                wait_until(lambda: digest_of_1() == moved.digest, timeout=30)
                assert c.get("/v2/_catalog").json()["repositories"] == ["mirror/app"]
