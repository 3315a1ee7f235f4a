"""end-8a / end-8b: GET /v2/<name>/tags/list, with n / last pagination."""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.oci import (
    assert_error,
    manifest_path,
    next_link,
    push_image,
    push_manifest,
)

# Mixed case, digits, separators: ASCII byte order puts digits, then upper case, then `_`,
# then lower case, which differs from a case-insensitive or natural sort.
TAGS = ["latest", "v1.10", "v1.9", "V2", "A", "a", "_private", "1.0", "Z-last", "b__c", "0"]


@pytest.fixture
def tagged(client: httpx.Client, repo: str) -> list[str]:
    """`repo` with all of TAGS on one manifest, pushed in a shuffled order."""
    image = push_image(client, repo, TAGS[0])
    others = TAGS[1:]
    random.shuffle(others)
    for tag in others:
        assert push_manifest(client, repo, tag, image.manifest).status_code == 201
    return sorted(TAGS)


def tags_url(repo: str) -> str:
    return f"/v2/{repo}/tags/list"


def test_end8a_tags_sorted_in_ascii_byte_order(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    r = client.get(tags_url(repo))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    body = r.json()
    assert body == {"name": repo, "tags": tagged}
    assert tagged == sorted(tagged, key=lambda t: t.encode())
    assert "link" not in r.headers


def test_end8a_untagged_repo_has_empty_list(client: httpx.Client, repo: str) -> None:
    push_image(client, repo)  # by digest only
    r = client.get(tags_url(repo))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == repo
    assert not body.get("tags")


def test_end8a_unknown_repo_is_404_name_unknown(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(tags_url(repo)), 404, "NAME_UNKNOWN")


def test_end8a_deleted_tag_is_gone_from_list(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    assert client.delete(manifest_path(repo, "latest")).status_code == 202
    assert client.get(tags_url(repo)).json()["tags"] == [t for t in tagged if t != "latest"]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_end8b_pagination_follows_link_header(
    client: httpx.Client, repo: str, tagged: list[str], n: int
) -> None:
    seen: list[str] = []
    url: str | None = f"{tags_url(repo)}?n={n}"
    pages = 0
    while url is not None:
        pages += 1
        assert pages <= len(tagged) + 1, "pagination does not terminate"
        r = client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["tags"] or []
        assert len(page) <= n
        seen.extend(page)
        url = next_link(r)
        if url is not None:
            assert url.startswith(tags_url(repo) + "?"), url
            query = parse_qs(urlsplit(url).query)
            assert query["n"] == [str(n)]
            assert query["last"] == [page[-1]]
    assert seen == tagged


def test_end8b_first_page(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    r = client.get(tags_url(repo), params={"n": 4})
    assert r.status_code == 200
    assert r.json()["tags"] == tagged[:4]
    link = r.headers["link"]
    assert 'rel="next"' in link


def test_end8b_n_zero_is_empty_list(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    r = client.get(tags_url(repo), params={"n": 0})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == repo
    assert r.json()["tags"] == []


def test_end8b_n_larger_than_count_has_no_link(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    r = client.get(tags_url(repo), params={"n": 1000})
    assert r.json()["tags"] == tagged
    assert "link" not in r.headers


def test_end8b_n_equal_to_count_has_no_further_tags(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    r = client.get(tags_url(repo), params={"n": len(tagged)})
    assert r.json()["tags"] == tagged
    follow = next_link(r)
    if follow is not None:  # allowed, but the next page must be empty
        assert not client.get(follow).json().get("tags")


def test_end8b_last_existing_tag(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    last = tagged[3]
    r = client.get(tags_url(repo), params={"last": last})
    assert r.status_code == 200
    assert r.json()["tags"] == tagged[4:]


def test_end8b_last_need_not_exist(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    # "b" is not a tag; everything sorting after it comes back.
    r = client.get(tags_url(repo), params={"last": "b", "n": 100})
    assert r.status_code == 200
    assert r.json()["tags"] == [t for t in tagged if t.encode() > b"b"]


def test_end8b_last_after_everything_is_empty(
    client: httpx.Client, repo: str, tagged: list[str]
) -> None:
    r = client.get(tags_url(repo), params={"last": "zzzz"})
    assert r.status_code == 200
    assert not r.json()["tags"]


def test_end8b_n_and_last(client: httpx.Client, repo: str, tagged: list[str]) -> None:
    r = client.get(tags_url(repo), params={"n": 2, "last": tagged[1]})
    assert r.json()["tags"] == tagged[2:4]


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
def test_end8b_invalid_n_is_400(client: httpx.Client, repo: str, tagged: list[str], n: str) -> None:
    assert_error(client.get(tags_url(repo), params={"n": n}), 400, None)


def test_end8b_unknown_repo_with_pagination_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(tags_url(repo), params={"n": 2}), 404, "NAME_UNKNOWN")
