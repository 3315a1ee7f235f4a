"""Health endpoints as zot has them, for load balancers and Kubernetes probes."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/startupz"])
def test_health_endpoint_is_200_when_up(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/startupz"])
def test_health_endpoint_answers_head(client: httpx.Client, path: str) -> None:
    r = client.head(path)
    assert r.status_code == 200
    assert r.content == b""
