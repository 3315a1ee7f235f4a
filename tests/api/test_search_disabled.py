"""Without `extensions.search` the search paths do not exist: 404 in the spec's envelope,
as for any unknown /v2/ path (the shared registry of the API tests runs without it)."""

from __future__ import annotations

import httpx

from tests.graphql import queries as q
from tests.graphql.conftest import SEARCH
from tests.support.oci import assert_error


def test_search_off_is_not_found(client: httpx.Client) -> None:
    assert_error(client.get(SEARCH, params={"query": q.zui_repo_list()}), 404, "NOT_FOUND")
    assert_error(client.post(SEARCH, json={"query": "{__typename}"}), 404, "NOT_FOUND")
    assert_error(client.put(SEARCH, content=b"{}"), 404, "NOT_FOUND")
    assert_error(client.get("/v2/_oci/ext/discover"), 404, "NOT_FOUND")
    assert_error(client.get("/v2/_zot/ext/mgmt"), 404, "NOT_FOUND")
