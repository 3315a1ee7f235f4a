"""On-demand retries (`maxRetries`/`retryDelay`, zot's semantics): a pull of an image whose
upstream is down fails at once, and the mirror keeps trying in the background, so that the
image is there once the upstream is back, without another client request."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.ops.conftest import scrape, value
from tests.support.oci import assert_error, push_image, sha256_digest, unique_repo
from tests.support.server import wait_until
from tests.sync.conftest import docker_registry, mirror
from tests.sync.test_on_demand import ACCEPT


def test_an_image_asked_for_while_the_upstream_is_down_arrives_when_it_is_back(
    tmp_path: Path,
) -> None:
    name = f"library/{unique_repo('retry')}"
    upstream_dir = tmp_path / "up"
    with docker_registry(upstream_dir) as up_server:
        port = up_server.port
        with httpx.Client(base_url=up_server.url, timeout=30) as up:
            image = push_image(up, name, "1.0")
    # Down now: the mirror's entry names it anyway, with retries.
    entry = {
        "urls": [f"http://127.0.0.1:{port}"],
        "onDemand": True,
        "maxRetries": 200,
        "retryDelay": "100ms",
    }
    with (
        mirror(tmp_path / "mirror", [entry], workers=1) as proc,
        httpx.Client(base_url=proc.url, timeout=30) as c,
    ):
        path = f"/v2/{name}/manifests/1.0"
        assert_error(c.get(path, headers=ACCEPT), 503, "UNAVAILABLE")

        def tagged() -> bool:
            # tags/list does not trigger an on-demand fetch: only the retries can bring it.
            r = c.get(f"/v2/{name}/tags/list")
            return r.status_code == 200 and "1.0" in r.json()["tags"]

        with docker_registry(upstream_dir, port=port):
            wait_until(tagged, timeout=30)
        # The upstream is down again: what the retries stored is served.
        r = c.get(path, headers=ACCEPT)
        assert r.status_code == 200, r.text
        assert r.content == image.manifest
        for layer in image.layers:
            assert c.get(f"/v2/{name}/blobs/{sha256_digest(layer)}").content == layer
        samples = scrape(proc.url)
        assert value(samples, "ocireg_sync_images_total", mode="on_demand", result="ok") == 1


def test_without_max_retries_nothing_is_fetched_behind_the_error(tmp_path: Path) -> None:
    name = f"library/{unique_repo('noretry')}"
    upstream_dir = tmp_path / "up"
    with docker_registry(upstream_dir) as up_server:
        port = up_server.port
        with httpx.Client(base_url=up_server.url, timeout=30) as up:
            push_image(up, name, "1.0")
    entry = {"urls": [f"http://127.0.0.1:{port}"], "onDemand": True}
    with (
        mirror(tmp_path / "mirror", [entry], workers=1) as proc,
        httpx.Client(base_url=proc.url, timeout=30) as c,
    ):
        assert_error(c.get(f"/v2/{name}/manifests/1.0", headers=ACCEPT), 503, "UNAVAILABLE")
        with docker_registry(upstream_dir, port=port):
            # The next pull fetches it; until then the repository stays unknown.
            assert_error(c.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
            assert c.get(f"/v2/{name}/manifests/1.0", headers=ACCEPT).status_code == 200
