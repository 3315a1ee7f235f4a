"""zot's lists answered from the search index: RepoListWithNewestImage, ImageList and
GlobalSearch order, count and page by what the index records of each tag (zot's update time,
whether zot lists it as an image), and read documents only for the page returned. These
tests walk the pages' boundaries against orders worked out here, and check that the index
follows pushes, deletes, `ocireg rebuild-meta` and an index of an older format."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.graphql import queries as q
from tests.graphql.conftest import SEARCH_ON, gql
from tests.support.oci import Image, descriptor, encode_json, manifest_path, push_image
from tests.support.server import RegistryProcess, base_config, run_cli, running_registry, wait_until

# repository -> (tag, config `created`); idx/c and idx/d tie (then: name order)
IMAGES = {
    "idx/a": [("v1", "2024-01-01T00:00:00Z")],
    "idx/b": [("v1", "2024-03-01T00:00:00Z"), ("v2", "2023-01-01T00:00:00Z")],
    "idx/c": [("v1", "2024-02-01T00:00:00.5Z")],
    "idx/d": [("v1", "2024-02-01T00:00:00.500Z")],
    "idx/e": [("v1", "2025-01-01T00:00:00+00:00")],
}
NEWEST_FIRST = ["idx/e", "idx/b", "idx/c", "idx/d", "idx/a"]
# As zot v2.1.20 orders repositories: by the later of their newest image and the creation of
# their newest tag; each tag created by its push here, after every image's time: push order.
TAGGED_LAST_FIRST = ["idx/e", "idx/d", "idx/c", "idx/b", "idx/a"]
IMAGES_NEWEST_FIRST = [
    ("idx/e", "v1"),
    ("idx/b", "v1"),
    ("idx/c", "v1"),
    ("idx/d", "v1"),
    ("idx/a", "v1"),
    ("idx/b", "v2"),
]
# cosign's signature tag: not an image for zot, so idx/f lists nothing despite its newest time
COSIGN_TAG = "sha256-" + "0" * 64 + ".sig"


def _config(created: str) -> bytes:
    return encode_json({"created": created, "architecture": "amd64", "os": "linux"})


def _push_all(client: httpx.Client) -> dict[tuple[str, str], Image]:
    pushed = {
        (repo, tag): push_image(client, repo, tag, config=_config(created), layer_size=32)
        for repo, images in IMAGES.items()
        for tag, created in images
    }
    push_image(client, "idx/f", COSIGN_TAG, config=_config("2030-01-01T00:00:00Z"))
    return pushed


@pytest.fixture(scope="module")
def pushed(client: httpx.Client) -> dict[tuple[str, str], Image]:
    return _push_all(client)


def _repo_page(client: httpx.Client, limit: int, offset: int, sort: str = "") -> dict[str, Any]:
    sort_by = f" sortBy: {sort}" if sort else ""
    query = (
        f"{{RepoListWithNewestImage(requestedPage: {{limit: {limit} offset: {offset}{sort_by}}})"
        " {Page {TotalCount ItemCount} Results {Name LastUpdated NewestImage {Tag}}}}"
    )
    found: dict[str, Any] = gql(client, query)["data"]["RepoListWithNewestImage"]
    return found


def _image_page(
    client: httpx.Client, limit: int, offset: int, sort: str, repo: str = ""
) -> dict[str, Any]:
    query = (
        f'{{ImageList(repo: "{repo}", requestedPage: {{limit: {limit} offset: {offset}'
        f" sortBy: {sort}}}) {{Page {{TotalCount ItemCount}} Results {{RepoName Tag}}}}}}"
    )
    found: dict[str, Any] = gql(client, query)["data"]["ImageList"]
    return found


def _all_pages(fetch: Any, size: int, total: int) -> list[Any]:
    seen = []
    for offset in range(0, total + size, size):  # one page past the end too
        page = fetch(size, offset)
        expected = len(range(total)[offset : offset + size])
        assert page["Page"] == {"TotalCount": total, "ItemCount": expected}, offset
        seen += page["Results"]
    return seen


@pytest.mark.parametrize("size", [1, 2, 5])
def test_repositories_page_in_update_order(client: httpx.Client, pushed: Any, size: int) -> None:
    found = _all_pages(lambda n, o: _repo_page(client, n, o), size, len(TAGGED_LAST_FIRST))
    assert [r["Name"] for r in found] == TAGGED_LAST_FIRST
    tagged = gql(client, '{Image(image: "idx/e:v1") {TaggedTimestamp}}')["data"]["Image"]
    assert found[0]["LastUpdated"] == tagged["TaggedTimestamp"] > "2025-01-01T00:00:00Z"
    assert found[3]["NewestImage"]["Tag"] == "v1"  # idx/b: v1 is newer than v2


def test_repositories_by_name_both_ways(client: httpx.Client, pushed: Any) -> None:
    total = len(NEWEST_FIRST)
    up = _all_pages(lambda n, o: _repo_page(client, n, o, "ALPHABETIC_ASC"), 2, total)
    down = _all_pages(lambda n, o: _repo_page(client, n, o, "ALPHABETIC_DSC"), 3, total)
    assert [r["Name"] for r in up] == sorted(NEWEST_FIRST)
    assert [r["Name"] for r in down] == sorted(NEWEST_FIRST, reverse=True)
    everything = _repo_page(client, 0, 0)  # limit 0: everything
    assert everything["Page"] == {"TotalCount": total, "ItemCount": total}
    past = _repo_page(client, 0, 99)
    assert past == {"Page": {"TotalCount": total, "ItemCount": 0}, "Results": []}
    negative = gql(
        client, "{RepoListWithNewestImage(requestedPage: {offset: -1}) {Results {Name}}}"
    )
    assert negative["errors"][0]["message"] == "requested page offset parameter can't be negative"


def test_images_page_across_repositories(client: httpx.Client, pushed: Any) -> None:
    total = len(IMAGES_NEWEST_FIRST)
    newest = _all_pages(lambda n, o: _image_page(client, n, o, "UPDATE_TIME"), 4, total)
    assert [(i["RepoName"], i["Tag"]) for i in newest] == IMAGES_NEWEST_FIRST
    relevance = _all_pages(lambda n, o: _image_page(client, n, o, "RELEVANCE"), 4, total)
    assert [(i["RepoName"], i["Tag"]) for i in relevance] == sorted(IMAGES_NEWEST_FIRST)
    one = _image_page(client, 1, 1, "ALPHABETIC_DSC", repo="idx/b")
    assert one == {
        "Page": {"TotalCount": 2, "ItemCount": 1},
        "Results": [{"RepoName": "idx/b", "Tag": "v1"}],
    }
    tags = gql(client, q.zui_image_suggestions(":v", page_number=2, page_size=4))
    assert tags["data"]["GlobalSearch"]["Images"] == [
        {"RepoName": r, "Tag": t} for r, t in sorted(IMAGES_NEWEST_FIRST)[4:]
    ]


def test_global_search_pages_from_the_index(client: httpx.Client, pushed: Any) -> None:
    found = gql(
        client, q.zui_global_search("idx/", page_number=2, page_size=2, sort_by="UPDATE_TIME")
    )
    page = found["data"]["GlobalSearch"]
    assert page["Page"] == {"TotalCount": 5, "ItemCount": 2}
    assert [r["Name"] for r in page["Repos"]] == TAGGED_LAST_FIRST[2:4]


def test_images_by_digest_page_from_the_records(
    client: httpx.Client, pushed: dict[tuple[str, str], Image]
) -> None:
    """`sha256:` texts match the manifest, config and layer digests the records hold."""
    image = pushed[("idx/b", "v2")]
    layer = descriptor("x", image.layers[0])["digest"]
    query = (
        '{ImageListForDigest(id: "ID", requestedPage: {limit: 4 offset: OFFSET sortBy:'
        " UPDATE_TIME}) {Page {TotalCount ItemCount} Results {RepoName Tag}}}"
    )

    def page(digest: str, offset: int) -> dict[str, Any]:
        text = query.replace("ID", digest).replace("OFFSET", str(offset))
        found: dict[str, Any] = gql(client, text)["data"]["ImageListForDigest"]
        return found

    assert page(layer[:20], 0) == {
        "Page": {"TotalCount": 1, "ItemCount": 1},
        "Results": [{"RepoName": "idx/b", "Tag": "v2"}],
    }
    every = page("sha256:", 4)  # every digest starts so: every listed image
    assert every["Page"] == {"TotalCount": 6, "ItemCount": 2}
    assert [(i["RepoName"], i["Tag"]) for i in every["Results"]] == IMAGES_NEWEST_FIRST[4:]
    config = descriptor("x", image.config)["digest"]
    found = gql(client, q.zli_global_search(config))["data"]["GlobalSearch"]
    assert [(i["RepoName"], i["Tag"]) for i in found["Images"]] == [("idx/b", "v2")]


def test_pushes_after_a_rebuild_and_deletes_show(
    registry: RegistryProcess, client: httpx.Client, pushed: Any
) -> None:
    """A rebuilt index knows no tag's creation: repositories are in their images' order."""
    done = run_cli("rebuild-meta", str(registry.config_path))
    assert done.returncode == 0, done.stderr
    assert [r["Name"] for r in _repo_page(client, 0, 0)["Results"]] == NEWEST_FIRST
    push_image(client, "idx/late", "v1", config=_config("2026-01-01T00:00:00Z"), layer_size=32)
    first = _repo_page(client, 1, 0)
    assert first["Page"] == {"TotalCount": 6, "ItemCount": 1}
    assert first["Results"][0]["Name"] == "idx/late"
    assert _image_page(client, 1, 0, "UPDATE_TIME")["Results"] == [
        {"RepoName": "idx/late", "Tag": "v1"}
    ]
    r = client.delete(manifest_path("idx/late", "v1"))
    assert r.status_code == 202, r.text
    assert [r["Name"] for r in _repo_page(client, 0, 0)["Results"]] == NEWEST_FIRST


def test_an_index_of_the_older_format_is_rebuilt(tmp_path: Path) -> None:
    """A search index written before the records said when and whether zot lists a tag
    (format 1) is rebuilt when the server starts: the lists fill again. (sqlite: the
    format's mark is the same for Redis, a key named after it.)"""
    cfg = base_config(tmp_path / "root", workers=1, extensions=SEARCH_ON)
    with (
        running_registry(tmp_path, cfg, name="first") as proc,
        httpx.Client(base_url=proc.url, timeout=30.0) as c,
    ):
        _push_all(c)
    db = sqlite3.connect(tmp_path / "root" / ".ocireg" / "meta.db")
    with db:  # as format 1 left it: no listed tags, and its own mark of a completed rebuild
        db.execute("DELETE FROM search_listed")
        db.execute("DELETE FROM state WHERE key LIKE 'search-ready%'")
        db.execute("INSERT INTO state VALUES ('search-ready', '1')")
    db.close()
    with (
        running_registry(tmp_path, cfg, name="second") as proc,
        httpx.Client(base_url=proc.url, timeout=30.0) as c,
    ):
        listed = wait_until(lambda: _repo_page(c, 0, 0)["Results"], timeout=60)
        assert [r["Name"] for r in listed] == NEWEST_FIRST
