"""The same `http.ratelimit` section given to zot and to ocireg: both refuse a client past
its rate with 429 and name the limit in `RateLimit-*` headers, and a method's own limit
applies to that method alone. (The 429's body differs: docs/api.md.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow

KINDS = ["zot", "ocireg"]


@contextmanager
def limited(tmp_path: Path, kind: str, limits: dict[str, Any]) -> Iterator[httpx.Client]:
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["ratelimit"] = limits
    proc = zot_or_ocireg(kind, tmp_path, config)
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30.0) as client:
            yield client
    finally:
        proc.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_past_the_rate_a_client_is_refused(tmp_path: Path, kind: str) -> None:
    with limited(tmp_path, kind, {"rate": 3}) as c:
        answers = [c.get("/v2/") for _ in range(20)]
        statuses = {r.status_code for r in answers}
        assert 429 in statuses and statuses <= {200, 429}, statuses
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.headers["ratelimit-limit"] == "3"
        assert refused.headers["ratelimit-remaining"] == "0"


@pytest.mark.parametrize("kind", KINDS)
def test_a_method_limit_applies_to_that_method_alone(tmp_path: Path, kind: str) -> None:
    with limited(tmp_path, kind, {"methods": [{"method": "POST", "rate": 1}]}) as c:
        assert {c.get("/v2/").status_code for _ in range(10)} == {200}
        posts = [c.post("/v2/limited/app/blobs/uploads/") for _ in range(4)]
        assert [r.status_code for r in posts] == [202, 429, 429, 429]
        assert posts[1].headers["ratelimit-limit"] == "1"
