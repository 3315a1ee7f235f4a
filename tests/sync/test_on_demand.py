"""Pull-through: a mirror with an on-demand sync entry fetches what a client asks for from a
real upstream (docker-registry), stores it, and serves it; later pulls are local."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest

from tests.ops.conftest import scrape, value
from tests.support.oci import (
    assert_error,
    image_index,
    push_image,
    push_manifest,
    sha256_digest,
    unique_repo,
)
from tests.support.server import RegistryProcess, wait_until
from tests.sync.conftest import Upstream, docker_registry, mirror

ACCEPT = {
    "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
}


def entry(upstream: Upstream, **extra: object) -> dict[str, object]:
    return {
        "urls": [upstream.url],
        "onDemand": True,
        "content": [{"prefix": "library/**", "destination": "/docker"}],
        **extra,
    }


@pytest.fixture(scope="module")
def pull_through(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> RegistryProcess:
    with mirror(tmp_path_factory.mktemp("mirror"), [entry(upstream)]) as proc:
        yield proc  # type: ignore[misc]


def stored_blob(proc: RegistryProcess, repo: str, digest: str) -> Path:
    return proc.root / repo / "blobs" / "sha256" / digest.split(":", 1)[1]


def test_a_tag_is_fetched_stored_and_served(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    name = unique_repo("alpine")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, f"library/{name}", "3.20", layers=2, layer_size=300_000)
    with httpx.Client(base_url=pull_through.url, timeout=30) as c:
        r = c.get(f"/v2/docker/library/{name}/manifests/3.20", headers=ACCEPT)
        assert r.status_code == 200, r.text
        assert r.content == image.manifest
        assert r.headers["docker-content-digest"] == image.digest
        for layer in image.layers:
            b = c.get(f"/v2/docker/library/{name}/blobs/{sha256_digest(layer)}")
            assert b.status_code == 200 and b.content == layer
    samples = scrape(pull_through.url)
    assert value(samples, "ocireg_sync_bytes_total") >= sum(len(x) for x in image.layers)
    assert value(samples, "ocireg_sync_images_total", mode="on_demand", result="ok") >= 1
    # Stored under the destination, digests kept.
    for layer in image.layers:
        assert (
            stored_blob(pull_through, f"docker/library/{name}", sha256_digest(layer)).read_bytes()
            == layer
        )


def test_an_upstream_without_the_referrers_api_is_not_counted_as_failing(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    # docker-registry 2.8 answers 404 to /referrers/: the copy looks, finds none, moves on.
    name = unique_repo("noreferrers")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        push_image(up, f"library/{name}", "1")

    def counted(metric: str, **labels: str) -> float:
        return value(scrape(pull_through.url), metric, **labels)

    errors = counted("ocireg_sync_upstream_errors_total")
    misses = counted("ocireg_sync_on_demand_total", result="miss")
    with httpx.Client(base_url=pull_through.url, timeout=30) as c:
        assert c.get(f"/v2/docker/library/{name}/manifests/1", headers=ACCEPT).status_code == 200
    # The miss is counted once the copy, referrers included, has ended.
    wait_until(lambda: counted("ocireg_sync_on_demand_total", result="miss") > misses)
    assert counted("ocireg_sync_upstream_errors_total") == errors


def test_unmapped_and_absent_names_are_plain_404s(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    with httpx.Client(base_url=pull_through.url, timeout=30) as c:
        r = c.get("/v2/other/thing/manifests/latest")
        assert_error(r, 404, "MANIFEST_UNKNOWN")
        r = c.get(f"/v2/docker/library/{unique_repo('absent')}/manifests/latest")
        assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_a_moved_tag_is_revalidated_on_the_next_pull(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    name = unique_repo("moving")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        first = push_image(up, f"library/{name}", "latest")
        with httpx.Client(base_url=pull_through.url, timeout=30) as c:
            path = f"/v2/docker/library/{name}/manifests/latest"
            assert c.get(path, headers=ACCEPT).headers["docker-content-digest"] == first.digest
            stored = pull_through.root / f"docker/library/{name}" / "index.json"
            wait_until(lambda: first.digest in stored.read_text())  # copied behind the answer
            second = push_image(up, f"library/{name}", "latest")
            r = c.get(path, headers=ACCEPT)
            assert r.status_code == 200 and r.headers["docker-content-digest"] == second.digest
            # The first image stays reachable by digest.
            assert c.get(f"/v2/docker/library/{name}/manifests/{first.digest}").status_code == 200


def test_a_multi_arch_index_brings_its_children(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    name = unique_repo("multi")
    repo = f"library/{name}"
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        amd = push_image(up, repo)
        arm = push_image(up, repo)
        body, digest = image_index(
            [
                amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
                arm.descriptor(platform={"architecture": "arm64", "os": "linux"}),
            ]
        )
        assert (
            push_manifest(
                up, repo, "v1", body, "application/vnd.oci.image.index.v1+json"
            ).status_code
            == 201
        )
    with httpx.Client(base_url=pull_through.url, timeout=30) as c:
        r = c.get(f"/v2/docker/{repo}/manifests/v1", headers=ACCEPT)
        assert r.status_code == 200 and r.headers["docker-content-digest"] == digest
    # The children are stored too (behind the answer: the copy goes on after it).
    index = pull_through.root / f"docker/{repo}" / "index.json"
    wait_until(lambda: digest in index.read_text())
    assert amd.digest in index.read_text() and arm.digest in index.read_text()
    for image in (amd, arm):
        for layer in image.layers:
            assert stored_blob(pull_through, f"docker/{repo}", sha256_digest(layer)).exists()


def test_a_missing_blob_is_fetched_on_its_own(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    name = unique_repo("blob")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, f"library/{name}", "t")
    layer = image.layers[0]
    with httpx.Client(base_url=pull_through.url, timeout=30) as c:
        r = c.head(f"/v2/docker/library/{name}/blobs/{sha256_digest(layer)}")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(layer)
        assert c.get(f"/v2/docker/library/{name}/blobs/{sha256_digest(layer)}").content == layer


def test_concurrent_pulls_of_one_missing_image_fetch_it_once(
    upstream: Upstream, pull_through: RegistryProcess
) -> None:
    name = unique_repo("herd")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, f"library/{name}", "by-digest", layers=3, layer_size=1 << 20)
    before = value(scrape(pull_through.url), "ocireg_sync_on_demand_total", result="miss")
    path = f"{pull_through.url}/v2/docker/library/{name}/manifests/{image.digest}"

    def pull(_: int) -> tuple[int, str]:
        # A connection each, so both worker processes take some.
        r = httpx.get(path, headers=ACCEPT, timeout=60)
        return r.status_code, r.headers.get("docker-content-digest", "")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(pull, range(8)))
    assert results == [(200, image.digest)] * 8

    def misses() -> float:
        return value(scrape(pull_through.url), "ocireg_sync_on_demand_total", result="miss")

    # Counted when the copy behind the first answer ends; the image is stored by then.
    wait_until(lambda: misses() > before)
    stored = pull_through.root / f"docker/library/{name}" / "index.json"
    assert image.digest in stored.read_text()
    assert misses() - before == 1


def test_cached_content_is_served_when_the_upstream_is_down(tmp_path: Path) -> None:
    with (
        docker_registry(tmp_path / "up") as up_server,
        mirror(tmp_path, [entry(up_server)]) as proc,
    ):
        name = unique_repo("outage")
        with httpx.Client(base_url=up_server.url, timeout=30) as up:
            image = push_image(up, f"library/{name}", "stable")
        path = f"/v2/docker/library/{name}/manifests/stable"

        def misses() -> float:
            return value(scrape(proc.url), "ocireg_sync_on_demand_total", result="miss")

        before = misses()
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            assert c.get(path, headers=ACCEPT).status_code == 200
            # The copy behind the answer goes on after index.json names the image (referrers)
            # and answers the tag itself until it ends: wait for its end, not for index.json.
            wait_until(lambda: misses() > before)
            stored = proc.root / f"docker/library/{name}" / "index.json"
            assert image.digest in stored.read_text()
            up_server.stop()
            r = c.get(path, headers=ACCEPT)
            assert r.status_code == 200 and r.content == image.manifest
            layer = sha256_digest(image.layers[0])
            assert c.get(f"/v2/docker/library/{name}/blobs/{layer}").content == image.layers[0]
            # Not cached and no upstream: a clear 503, not a 500 or a silent 404.
            r = c.get(f"/v2/docker/library/{unique_repo('never')}/manifests/x", headers=ACCEPT)
            assert_error(r, 503, "UNAVAILABLE")
        samples = scrape(proc.url)
        assert value(samples, "ocireg_sync_on_demand_total", result="stale") >= 1


def test_manifest_check_interval_serves_a_recent_tag_without_asking(tmp_path: Path) -> None:
    with (
        docker_registry(tmp_path / "up") as up_server,
        mirror(tmp_path, [entry(up_server, manifestCheckInterval="1h")], workers=1) as proc,
    ):
        name = unique_repo("quiet")
        with httpx.Client(base_url=up_server.url, timeout=30) as up:
            first = push_image(up, f"library/{name}", "latest")
            path = f"/v2/docker/library/{name}/manifests/latest"
            with httpx.Client(base_url=proc.url, timeout=30) as c:
                assert c.get(path, headers=ACCEPT).headers["docker-content-digest"] == first.digest
                stored = proc.root / f"docker/library/{name}" / "index.json"
                wait_until(lambda: first.digest in stored.read_text())
                push_image(up, f"library/{name}", "latest")
                # Within the interval: the stored tag, without asking upstream.
                r = c.get(path, headers=ACCEPT)
                assert r.headers["docker-content-digest"] == first.digest


def test_urls_are_tried_in_order(upstream: Upstream, tmp_path: Path) -> None:
    name = unique_repo("failover")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, f"library/{name}", "v1")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    entries = [{"urls": [dead, upstream.url], "onDemand": True}]
    with mirror(tmp_path, entries) as proc:
        r = httpx.get(f"{proc.url}/v2/library/{name}/manifests/v1", headers=ACCEPT, timeout=30)
        assert r.status_code == 200 and r.content == image.manifest
        errors = value(scrape(proc.url), "ocireg_sync_upstream_errors_total", upstream=dead)
        assert errors >= 1
