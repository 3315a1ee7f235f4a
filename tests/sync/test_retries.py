"""On-demand retries (`maxRetries`/`retryDelay`, zot's semantics): a pull of an image whose
upstream is down fails at once, and the mirror keeps trying in the background, so that the
image is there once the upstream is back, without another client request. A blob request
retries while it waits, for a bounded time, then goes on in the background likewise."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from ocireg.sync.service import CLIENT_RETRY_WAIT
from tests.ops.conftest import scrape, value
from tests.support.oci import assert_error, push_image, sha256_digest, unique_repo
from tests.support.recording_proxy import recording_proxy
from tests.support.server import wait_until
from tests.sync.conftest import Upstream, docker_registry, mirror
from tests.sync.test_on_demand import ACCEPT, stored_blob


def on_demand(url: str, **retries: object) -> dict[str, object]:
    """An on-demand entry for the upstream at `url`, with these retry keys."""
    return {"urls": [url], "onDemand": True, **retries}


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
    entry = on_demand(f"http://127.0.0.1:{port}", maxRetries=200, retryDelay="100ms")
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
    entry = on_demand(f"http://127.0.0.1:{port}")
    with (
        mirror(tmp_path / "mirror", [entry], workers=1) as proc,
        httpx.Client(base_url=proc.url, timeout=30) as c,
    ):
        assert_error(c.get(f"/v2/{name}/manifests/1.0", headers=ACCEPT), 503, "UNAVAILABLE")
        with docker_registry(upstream_dir, port=port):
            # The next pull fetches it; until then the repository stays unknown.
            assert_error(c.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
            assert c.get(f"/v2/{name}/manifests/1.0", headers=ACCEPT).status_code == 200


def test_a_blob_request_retries_an_upstream_that_fails_at_first(
    upstream: Upstream, tmp_path: Path
) -> None:
    name = f"library/{unique_repo('flakyblob')}"
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, name, "1.0", layer_size=300_000)
    layer, config = sha256_digest(image.layers[0]), sha256_digest(image.config)
    with recording_proxy(upstream.url) as proxy:
        entry = on_demand(f"http://{proxy.host}", maxRetries=3, retryDelay="100ms")
        with (
            mirror(tmp_path, [entry], workers=1) as proc,
            httpx.Client(base_url=proc.url, timeout=30) as c,
        ):
            proxy.fail_next(2, "/blobs/")
            r = c.get(f"/v2/{name}/blobs/{layer}")
            assert r.status_code == 200 and r.content == image.layers[0]
            proxy.fail_next(2, "/blobs/")
            r = c.head(f"/v2/{name}/blobs/{config}")
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == len(image.config)
    for digest in (layer, config):
        statuses = [s.status for s in proxy.seen if s.path.endswith(digest)]
        assert statuses == [503, 503, 200], (digest, statuses)


def test_a_blob_request_retries_for_a_bounded_time_then_in_the_background(
    upstream: Upstream, tmp_path: Path
) -> None:
    name = f"library/{unique_repo('downblob')}"
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, name, "1.0")
    layer = sha256_digest(image.layers[0])
    with recording_proxy(upstream.url) as proxy:
        entry = on_demand(
            f"http://{proxy.host}", maxRetries=1000, retryDelay="500ms", maxRetryDelay="2s"
        )
        with (
            mirror(tmp_path, [entry], workers=1) as proc,
            httpx.Client(base_url=proc.url, timeout=60) as c,
        ):
            proxy.fail_next(1_000_000, "/blobs/")
            started = time.monotonic()
            r = c.get(f"/v2/{name}/blobs/{layer}")
            waited = time.monotonic() - started
            assert_error(r, 503, "UNAVAILABLE")
            # Retried while the client waited (0.5 + 1 + 2 + 2 ... s), never past the bound.
            assert CLIENT_RETRY_WAIT - 2.5 <= waited < CLIENT_RETRY_WAIT + 3, waited
            attempts = [s for s in proxy.seen if s.path.endswith(layer)]
            assert 4 <= len(attempts) <= 8, attempts
            # The upstream recovers: the background retries store the blob, no client asks.
            proxy.fail_next(0, "")
            wait_until(lambda: stored_blob(proc, name, layer).exists(), timeout=30)
            r = c.get(f"/v2/{name}/blobs/{layer}")
            assert r.status_code == 200 and r.content == image.layers[0]
