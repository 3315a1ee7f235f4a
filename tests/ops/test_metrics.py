"""`/metrics` (extensions.metrics) summed across worker processes, and the background
maintenance it reports on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import BLOB, MANIFEST, UPLOADS, scrape, value
from tests.support.oci import (
    assert_error,
    push_blob,
    push_image,
    random_bytes,
    sha256_digest,
    unique_repo,
)
from tests.support.server import (
    RegistryProcess,
    base_config,
    run_cli,
    running_registry,
    wait_until,
)


def metrics_config(root: Path, **storage: str) -> dict[str, object]:
    config = base_config(root, workers=2)
    config["extensions"] = {"metrics": {"enable": True, "prometheus": {"path": "/metrics"}}}
    config["storage"].update(storage)  # type: ignore[attr-defined]
    return config


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("metrics")
    with running_registry(workdir, metrics_config(workdir / "root")) as proc:
        yield proc


def test_metrics_count_a_known_sequence_across_workers(metered: RegistryProcess) -> None:
    repo = unique_repo("metrics")
    data = random_bytes(1000)
    digest = sha256_digest(data)
    # A new connection per request, so that both workers serve some of them.
    with httpx.Client(base_url=metered.url, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        for _ in range(6):
            assert c.get("/v2/").status_code == 200
        r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201, r.text
        for _ in range(3):
            assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 200
        for _ in range(2):
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
        for _ in range(2):
            assert_error(c.get(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
        assert_error(c.get("/not-an-endpoint"), 404, None)
        assert_error(c.delete("/v2/"), 405, "UNSUPPORTED")

    samples = scrape(metered.url)
    requests = "ocireg_http_requests_total"
    assert value(samples, requests, method="GET", route="/v2/", status="200") == 6
    assert value(samples, requests, method="POST", route=UPLOADS, status="201") == 1
    assert value(samples, requests, method="HEAD", route=BLOB, status="200") == 3
    assert value(samples, requests, method="GET", route=BLOB, status="200") == 2
    assert value(samples, requests, method="GET", route=MANIFEST, status="404") == 2
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="DELETE", route="/v2/", status="405") == 1
    assert value(samples, "ocireg_http_request_bytes_total", method="POST", route=UPLOADS) == 1000
    assert value(samples, "ocireg_http_response_bytes_total", method="GET", route=BLOB) == 2000
    latency = "ocireg_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route="/v2/") == 6
    assert value(samples, latency, method="HEAD", route=BLOB) == 3
    assert value(samples, "ocireg_uploads_in_progress") == 0
    # Routes are templates: no repository name or digest ever becomes a label value.
    for s in samples:
        assert repo not in json.dumps(s.labels) and digest not in json.dumps(s.labels), s
    # The scrape itself is counted like any request.
    again = scrape(metered.url)
    assert value(again, requests, method="GET", route="/metrics", status="200") >= 1


def test_metrics_count_an_upload_in_progress(metered: RegistryProcess) -> None:
    repo = unique_repo("metrics")
    location = httpx.post(f"{metered.url}/v2/{repo}/blobs/uploads/").headers["location"]
    release = threading.Event()
    result: list[int] = []

    def body() -> Iterator[bytes]:
        yield b"x" * 1024
        release.wait(timeout=30)
        yield b"y" * 1024

    def upload() -> None:
        r = httpx.patch(metered.url + location, content=body(), timeout=60)
        result.append(r.status_code)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        wait_until(lambda: value(scrape(metered.url), "ocireg_uploads_in_progress") == 1)
    finally:
        release.set()
        thread.join(timeout=60)
    assert result == [202]
    assert value(scrape(metered.url), "ocireg_uploads_in_progress") == 0


def test_metrics_disabled_is_not_served(client: httpx.Client) -> None:
    """The shared registry has no extensions.metrics section: no endpoint."""
    assert_error(client.get("/metrics"), 404, None)


def test_metrics_config_errors_name_the_key(tmp_path: Path) -> None:
    cases = [
        ({"metrics": {"enable": "yes"}}, "extensions.metrics.enable"),
        ({"metrics": {"prometheus": {"path": "metrics"}}}, "extensions.metrics.prometheus.path"),
        ({"metrics": {"promethus": {}}}, "extensions.metrics.promethus"),
        ({"scrub": {"interval": "soon"}}, "extensions.scrub.interval"),
        ({"scrub": {"enable": 1}}, "extensions.scrub.enable"),
    ]
    for extensions, key in cases:
        config = base_config(tmp_path / "root")
        config["extensions"] = extensions
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        result = run_cli("verify", str(path))
        assert result.returncode == 1, (extensions, result.stdout)
        assert key in result.stderr, result.stderr


def test_background_gc_and_scrub_run_in_one_worker_and_are_measured(tmp_path: Path) -> None:
    config = metrics_config(tmp_path / "root", gcDelay="2s", gcInterval="1s")
    config["extensions"]["scrub"] = {"interval": "1s"}  # type: ignore[index]
    with running_registry(tmp_path, config) as proc:
        repo = unique_repo("metrics")
        with httpx.Client(base_url=proc.url) as c:
            image = push_image(c, repo, "v1")
            orphan = push_blob(c, repo, random_bytes(300))
        orphan_file = proc.root / repo / "blobs" / "sha256" / orphan.split(":")[1]
        wait_until(lambda: not orphan_file.exists(), timeout=30)
        samples = wait_until(
            lambda: (
                (s := scrape(proc.url))
                and value(s, "ocireg_repository_storage_bytes", repository=repo) > 0
                and s
            )
        )
        kept = len(image.manifest) + len(image.config) + sum(len(x) for x in image.layers)
        assert value(samples, "ocireg_repository_storage_bytes", repository=repo) == kept
        assert value(samples, "ocireg_gc_runs_total", result="ok") >= 1
        assert value(samples, "ocireg_gc_removed_total", type="blob") >= 1
        assert value(samples, "ocireg_gc_removed_bytes_total") >= 300

        layer = sha256_digest(image.layers[0])
        layer_file = proc.root / repo / "blobs" / "sha256" / layer.split(":")[1]
        layer_file.write_bytes(b"X" + image.layers[0][1:])
        problem = {"problem": "blob_digest_mismatch"}
        wait_until(lambda: value(scrape(proc.url), "ocireg_scrub_problems_total", **problem) >= 1)
        assert layer_file.exists()
        log = proc.log_path.read_text()  # all of it: logs() keeps only the tail
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    runs = [x for x in lines if x["message"] in ("gc run", "scrub run")]
    assert {x["message"] for x in runs} == {"gc run", "scrub run"}
    assert len({x["pid"] for x in runs}) == 1, "maintenance ran in more than one worker"
    assert log.count("maintenance runs in this worker") == 1
    problems = [x for x in lines if x["message"] == "scrub problem"]
    assert {"repository": repo, "blob": layer, **problem}.items() <= problems[0].items()


def test_retention_dry_run_keeps_the_storage_bytes_of_what_stays(tmp_path: Path) -> None:
    """With retention's `dryRun`, a tag the policy would remove stays, and so do its image's
    blobs: the background GC sets the repository's storage bytes to all of them (only an
    orphan blob went), not to what would be left had the decision been applied."""
    config = metrics_config(tmp_path / "root", gcDelay="2s", gcInterval="1s")
    config["storage"]["retention"] = {  # type: ignore[index]
        "dryRun": True,
        "policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["^v"]}]}],
    }
    with running_registry(tmp_path, config) as proc:
        repo = unique_repo("metrics")
        with httpx.Client(base_url=proc.url) as c:
            images = [push_image(c, repo, "v1"), push_image(c, repo, "dev")]  # dev: "removed"
            orphan = push_blob(c, repo, random_bytes(300))
        orphan_file = proc.root / repo / "blobs" / "sha256" / orphan.split(":")[1]
        wait_until(lambda: not orphan_file.exists(), timeout=30)
        # A whole run started after the orphan went has recorded every repository it saw.
        runs = value(scrape(proc.url), "ocireg_gc_runs_total")
        samples = wait_until(
            lambda: (s := scrape(proc.url)) and value(s, "ocireg_gc_runs_total") > runs + 1 and s,
            timeout=30,
        )
        with httpx.Client(base_url=proc.url) as c:
            assert set(c.get(f"/v2/{repo}/tags/list").json()["tags"]) == {"v1", "dev"}
    stays = sum(len(i.manifest) + len(i.config) + sum(map(len, i.layers)) for i in images)
    assert value(samples, "ocireg_repository_storage_bytes", repository=repo) == stays
    assert value(samples, "ocireg_gc_removed_total", type="tag") == 0


def test_metrics_endpoint_sits_behind_authentication_and_metrics_policy(tmp_path: Path) -> None:
    """zot's `accessControl.metrics.users`: only they may scrape."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(f'{user}-pw'.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user in ("alice", "bob")
        )
    )
    config = metrics_config(tmp_path / "root")
    config["http"].update(  # type: ignore[attr-defined]
        auth={"htpasswd": {"path": str(htpasswd)}},
        accessControl={"metrics": {"users": ["alice"]}},
    )
    with running_registry(tmp_path, config) as proc:
        assert_error(httpx.get(f"{proc.url}/metrics"), 401, "UNAUTHORIZED")
        assert_error(httpx.get(f"{proc.url}/metrics", auth=("bob", "bob-pw")), 403, "DENIED")
        r = httpx.get(f"{proc.url}/metrics", auth=("alice", "alice-pw"))
        assert r.status_code == 200, r.text
        samples = [s for f in text_string_to_metric_families(r.text) for s in f.samples]
        requests = "ocireg_http_requests_total"
        assert value(samples, requests, method="GET", route="/metrics", status="401") == 1
        assert value(samples, requests, method="GET", route="/metrics", status="403") == 1
