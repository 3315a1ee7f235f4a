"""zot and ocireg answer zui's and zli's GraphQL queries with the same shapes (keys, and the
JSON type of each value) for the same content pushed to both.

Needs a zot built with the search extension: the reference build in ../shared/tools is not
(its extension list lacks /v2/_zot/ext/search, and it logs that search is left out), so the
test skips there and says so. Values differ where docs/graphql.md says (zot's own ranking of
search results, for one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.graphql import queries as q
from tests.graphql.conftest import SEARCH, Content, gql, push_content
from tests.support.server import RegistryProcess, base_config
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow
SEARCH_ON = {"search": {"enable": True}}

QUERIES: dict[str, Callable[[Content], str]] = {
    "GlobalSearch (zui)": lambda c: q.zui_global_search("gql"),
    "GlobalSearch (zli)": lambda c: q.zli_global_search("gql"),
    "GlobalSearch tags (zui)": lambda c: q.zui_image_suggestions(f"{c.app}:v"),
    "RepoListWithNewestImage (zui)": lambda c: q.zui_repo_list(),
    "ExpandedRepoInfo (zui)": lambda c: q.zui_expanded_repo_info(c.app),
    "ImageList (zli)": lambda c: q.zli_image_list(c.multi),
    "Image (zui)": lambda c: q.zui_image(c.app, "v1"),
    "Referrers (zli)": lambda c: q.zli_referrers(c.app, c.v1.digest),
    "Referrers (zui)": lambda c: q.zui_referrers(c.app, c.v1.digest),
}


def shape(value: Any) -> Any:
    """The keys and JSON types of a value; a list by the shapes of its items (deduplicated)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            if shape(item) not in shapes:
                shapes.append(shape(item))
        return shapes
    return type(value).__name__


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, Content]]]:
    workdir: Path = tmp_path_factory.mktemp("graphql-interop")
    procs = {
        "zot": ZotProcess(
            workdir, zot_config(base_config(workdir / "zot", extensions=SEARCH_ON)), name="zot"
        ),
        "ocireg": RegistryProcess(
            workdir, base_config(workdir / "ocireg", workers=1, extensions=SEARCH_ON)
        ),
    }
    out: dict[str, tuple[str, Content]] = {}
    try:
        for name, proc in procs.items():
            proc.start()
            with httpx.Client(base_url=proc.url, timeout=30.0) as client:
                endpoints = [
                    e
                    for ext in client.get("/v2/_oci/ext/discover").json().get("extensions") or []
                    for e in ext.get("endpoints") or []
                ]
                if SEARCH not in endpoints:
                    pytest.skip(f"{name} at {proc.url} was built without the search extension")
                out[name] = (proc.url, push_content(client, "gql"))
        yield out
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.mark.parametrize("name", list(QUERIES))
def test_same_shapes(name: str, servers: dict[str, tuple[str, Content]]) -> None:
    answers = {}
    for server, (url, content) in servers.items():
        with httpx.Client(base_url=url, timeout=30.0) as client:
            answers[server] = gql(client, QUERIES[name](content))
    assert "errors" not in answers["zot"], answers["zot"]
    assert shape(answers["ocireg"]) == shape(answers["zot"])
