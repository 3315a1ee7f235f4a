"""GET /v2/_catalog (not in the spec's table, but every client expects it): the same sorting
and n / last pagination as end-8b.

The catalog lists every repository on the shared server, so these tests only assert on their
own repositories (under a unique prefix) and on properties of the whole list.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.oci import assert_error, next_link, push_image

CATALOG = "/v2/_catalog"


@pytest.fixture
def prefix(client: httpx.Client) -> str:
    """A unique top-level prefix with repositories `<p>/a`, `<p>/b`, `<p>/c/d`, `<p>/c-e`."""
    p = "catalog" + uuid.uuid4().hex[:10]
    for name in ("b", "c/d", "a", "c-e"):
        push_image(client, f"{p}/{name}", "v1")
    return p


def ours(prefix: str) -> list[str]:
    # ASCII order: "-" (0x2d) sorts before "/" (0x2f).
    return [f"{prefix}/a", f"{prefix}/b", f"{prefix}/c-e", f"{prefix}/c/d"]


def all_pages(client: httpx.Client, n: int) -> list[str]:
    seen: list[str] = []
    url: str | None = f"{CATALOG}?n={n}"
    for _ in range(100_000):
        if url is None:
            return seen
        r = client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["repositories"] or []
        assert len(page) <= n
        seen.extend(page)
        url = next_link(r)
        if url is not None:
            assert url.startswith(CATALOG + "?"), url
    raise AssertionError("catalog pagination does not terminate")


def test_catalog_lists_repositories_sorted(client: httpx.Client, prefix: str) -> None:
    r = client.get(CATALOG)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    repos = r.json()["repositories"]
    assert repos == sorted(repos, key=lambda s: s.encode())
    assert len(repos) == len(set(repos))
    assert [x for x in repos if x.startswith(prefix + "/")] == ours(prefix)


@pytest.mark.parametrize("n", [1, 3, 50])
def test_catalog_pagination_follows_link(client: httpx.Client, prefix: str, n: int) -> None:
    full = client.get(CATALOG).json()["repositories"]
    paged = all_pages(client, n)
    # Other tests may add repositories meanwhile, never remove any of ours.
    assert paged == sorted(paged, key=lambda s: s.encode())
    assert len(paged) == len(set(paged))
    assert set(full) <= set(paged)
    assert [x for x in paged if x.startswith(prefix + "/")] == ours(prefix)


def test_catalog_last_and_n(client: httpx.Client, prefix: str) -> None:
    r = client.get(CATALOG, params={"n": 2, "last": f"{prefix}/a"})
    assert r.status_code == 200
    assert r.json()["repositories"] == ours(prefix)[1:3]
    assert 'rel="next"' in r.headers["link"]


def test_catalog_last_need_not_exist(client: httpx.Client, prefix: str) -> None:
    r = client.get(CATALOG, params={"n": 2, "last": f"{prefix}/aa"})
    assert r.json()["repositories"] == ours(prefix)[1:3]


def test_catalog_n_zero_is_empty(client: httpx.Client, prefix: str) -> None:
    r = client.get(CATALOG, params={"n": 0})
    assert r.status_code == 200, r.text
    assert r.json()["repositories"] == []


@pytest.mark.parametrize("n", ["-1", "abc"])
def test_catalog_invalid_n_is_400(client: httpx.Client, n: str) -> None:
    assert_error(client.get(CATALOG, params={"n": n}), 400, None)


def test_catalog_survives_tag_deletion(client: httpx.Client, prefix: str) -> None:
    # Deleting a repository's only tag must not break the listing.
    assert client.delete(f"/v2/{prefix}/a/manifests/v1").status_code == 202
    r = client.get(CATALOG)
    assert r.status_code == 200
    repos = r.json()["repositories"]
    assert f"{prefix}/b" in repos
