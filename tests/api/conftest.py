"""Fixtures for the dist-spec API tests (the `registry` and `client` fixtures come from
tests/conftest.py: one shared server, so each test works in a repository of its own)."""

from __future__ import annotations

import pytest

from tests.support.oci import unique_repo


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A fresh repository name, prefixed with the test module's area (e.g. `blobs/...`)."""
    area = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return unique_repo(f"api-{area}")  # not `blobs/...`: a reserved component
