"""zot's `http.ratelimit` on a real server: requests per second per client address, for all
requests and per method; beyond it 429 `TOOMANYREQUESTS` in the spec's envelope, with
`Retry-After`, and the client is served again once its bucket refills."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import base_config, running_registry, wait_until


def test_requests_beyond_the_rate_are_refused_until_the_bucket_refills(tmp_path: Path) -> None:
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["ratelimit"] = {"rate": 2}
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        # (the harness's readiness checks came from this address too: the bucket may not
        # be full yet; it refills at 2 a second)
        statuses = [c.get("/v2/").status_code for _ in range(30)]
        assert statuses.count(429) >= 10, statuses
        assert set(statuses) <= {200, 429}, statuses
        refused = c.get("/v2/_catalog")
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-limit"] == "2"  # as zot names them
        assert refused.headers["ratelimit-remaining"] == "0"
        assert refused.headers["x-request-id"]  # answered, and logged, as any request
        served = wait_until(
            lambda: (r := c.get("/v2/_catalog")).status_code == 200 and r, timeout=10, interval=0.2
        )
        assert served.headers["ratelimit-limit"] == "2"


def test_a_method_limit_applies_to_that_method_alone(tmp_path: Path) -> None:
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["ratelimit"] = {"methods": [{"method": "POST", "rate": 1}]}
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert {c.get("/v2/").status_code for _ in range(20)} == {200}
        posts = [c.post("/v2/limited/app/blobs/uploads/").status_code for _ in range(10)]
        assert posts[0] == 202
        assert posts.count(429) >= 5, posts
        assert set(posts) <= {202, 429}
