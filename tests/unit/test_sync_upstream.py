"""The upstream client's pure parts: challenges, pagination links, Docker Hub names, retries."""

from __future__ import annotations

import asyncio
import time

import pytest

from ocireg.sync.settings import RegistrySettings
from ocireg.sync.upstream import (
    UpstreamError,
    _next_page,
    _parse_challenge,
    remote_path,
    with_retries,
)


def test_bearer_challenge_with_commas_inside_quotes() -> None:
    scheme, params = _parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert _parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_next_page_is_a_path_below_v2() -> None:
    assert _next_page('</v2/_catalog?last=b&n=2>; rel="next"') == "_catalog?last=b&n=2"
    assert _next_page('<https://h/v2/a/tags/list?last=x>; rel="next"') == "a/tags/list?last=x"
    assert _next_page("") is None
    assert _next_page('</elsewhere>; rel="next"') is None


def test_docker_hub_official_images_live_under_library() -> None:
    assert remote_path("https://registry-1.docker.io", "alpine") == "library/alpine"
    assert remote_path("https://index.docker.io", "user/app") == "user/app"
    assert remote_path("http://127.0.0.1:5000", "alpine") == "alpine"


def _settings(retries: int) -> RegistrySettings:
    return RegistrySettings(urls=("http://h",), max_retries=retries)


@pytest.mark.parametrize(("transient", "calls"), [(True, 3), (False, 1)])
def test_retries_only_transient_failures(transient: bool, calls: int) -> None:
    attempts = []

    async def attempt() -> None:
        attempts.append(1)
        raise UpstreamError("http://h", "boom", transient=transient)

    with pytest.raises(UpstreamError):
        asyncio.run(with_retries(_settings(2), attempt))
    assert len(attempts) == calls


def test_a_retry_that_succeeds_returns_its_value() -> None:
    attempts = []

    async def attempt() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise UpstreamError("http://h", "flaky", transient=True)
        return "ok"

    assert asyncio.run(with_retries(_settings(3), attempt)) == "ok"


def test_no_retry_starts_after_the_deadline() -> None:
    attempts = []

    async def attempt() -> None:
        attempts.append(1)
        raise UpstreamError("http://h", "down", transient=True)

    async def bounded() -> None:
        # retryDelay 0: every retry fits until the deadline, which has passed already.
        await with_retries(_settings(50), attempt, deadline=time.monotonic() - 1)

    with pytest.raises(UpstreamError):
        asyncio.run(bounded())
    assert len(attempts) == 1
