"""Download counts and last pull times in zot's search answers, from the pulls a real server
noted (registry/pulls.py): manifest GETs count, HEADs do not, each manifest has its own count,
a repository's is the sum over its images, and `sortBy: DOWNLOADS` orders by them. With
OCIREG_TEST_BACKEND=s3 the counts live in Redis, else in the embedded sqlite store."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.graphql.conftest import Content, gql, push_content
from tests.support.oci import manifest_path

ZERO_TIME = "0001-01-01T00:00:00Z"
FLUSHED_WITHIN = 30.0  # seconds: the workers hand pulls to the store every 5 s

REPO_INFO = """{ ExpandedRepoInfo(repo: "%s") {
  Images { Tag Digest DownloadCount LastPullTimestamp Manifests { Digest DownloadCount } }
  Summary { Name DownloadCount NewestImage { Tag DownloadCount } } } }"""
REPOS_BY_DOWNLOADS = """{ GlobalSearch(query: "dlsort/", requestedPage: {sortBy: DOWNLOADS}) {
  Page { TotalCount ItemCount } Repos { Name DownloadCount } } }"""
IMAGES_BY_DOWNLOADS = """{ ImageList(repo: "%s", requestedPage: {sortBy: DOWNLOADS, limit: 2}) {
  Page { TotalCount ItemCount } Results { Tag DownloadCount } } }"""


@pytest.fixture(scope="module")
def content(client: httpx.Client) -> Content:
    return push_content(client, "dl")


def _pull(client: httpx.Client, repo: str, reference: str, times: int, method: str = "GET") -> None:
    for _ in range(times):
        r = client.request(method, manifest_path(repo, reference))
        assert r.status_code == 200, r.text


def _repo_info(client: httpx.Client, repo: str) -> dict[str, Any]:
    info: dict[str, Any] = gql(client, REPO_INFO % repo)["data"]["ExpandedRepoInfo"]
    return info


def _when_counted(client: httpx.Client, repo: str, total: int) -> dict[str, Any]:
    """The repository's info once its download count reached `total` (bounded)."""
    deadline = time.monotonic() + FLUSHED_WITHIN
    while True:
        info = _repo_info(client, repo)
        if info["Summary"]["DownloadCount"] >= total or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def test_pulls_are_counted_per_image_and_summed_per_repository(
    client: httpx.Client, content: Content
) -> None:
    before = time.time()
    _pull(client, content.app, "v1", 3)
    _pull(client, content.app, content.v1.digest, 1)  # by digest: the same manifest's count
    _pull(client, content.app, "v2", 1)
    _pull(client, content.app, "v2", 2, "HEAD")  # not a download
    _pull(client, content.app, "notation-sig", 2)  # a signature: no image of the repository
    after = time.time()

    info = _when_counted(client, content.app, 5)
    images = {image["Tag"]: image for image in info["Images"]}
    assert (images["v1"]["DownloadCount"], images["v2"]["DownloadCount"]) == (4, 1)
    assert images["v1"]["Manifests"] == [{"Digest": content.v1.digest, "DownloadCount": 4}]
    assert images["artifact"]["DownloadCount"] == 0
    assert images["artifact"]["LastPullTimestamp"] == ZERO_TIME
    for tag in ("v1", "v2"):
        pulled = _time(images[tag]["LastPullTimestamp"])
        assert before - 1 <= pulled <= after + 1, (tag, images[tag]["LastPullTimestamp"])
    summary = info["Summary"]
    assert summary["DownloadCount"] == 5  # v1 + v2 + artifact; the signature is not an image
    assert summary["NewestImage"] == {"Tag": "v2", "DownloadCount": 1}


def test_an_index_and_its_platforms_have_counts_of_their_own(
    client: httpx.Client, content: Content
) -> None:
    _pull(client, content.multi, "latest", 7)
    _pull(client, content.multi, content.amd64.digest, 1)  # a client picking its platform

    info = _when_counted(client, content.multi, 7)
    (image,) = info["Images"]
    assert (image["Tag"], image["DownloadCount"]) == ("latest", 7)
    counts = {m["Digest"]: m["DownloadCount"] for m in image["Manifests"]}
    assert counts == {content.amd64.digest: 1, content.arm64.digest: 0}
    assert info["Summary"]["DownloadCount"] == 7


def test_sorting_by_downloads(client: httpx.Client) -> None:
    """multi (4 pulls) before app (3), which the name order would reverse; within app, v1
    (2) then v2 (1), where names put `artifact` first."""
    own = push_content(client, "dlsort")
    _pull(client, own.multi, "latest", 4)
    _pull(client, own.app, "v1", 2)
    _pull(client, own.app, "v2", 1)
    _when_counted(client, own.multi, 4)
    _when_counted(client, own.app, 3)
    data = gql(client, REPOS_BY_DOWNLOADS)["data"]["GlobalSearch"]
    assert [(r["Name"], r["DownloadCount"]) for r in data["Repos"]] == [
        (own.multi, 4),
        (own.app, 3),
    ]
    data = gql(client, IMAGES_BY_DOWNLOADS % own.app)["data"]["ImageList"]
    assert data["Page"] == {"TotalCount": 3, "ItemCount": 2}
    assert [(i["Tag"], i["DownloadCount"]) for i in data["Results"]] == [("v1", 2), ("v2", 1)]
