"""Concurrent writers against the shared server (two worker processes): the same blob from
eight clients at once, and many tags written to one index.json at once.

Each thread has its own client, hence its own connection, so requests spread over workers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx

from tests.support.backends import stored_bytes
from tests.support.oci import (
    blob_path,
    manifest_path,
    patch_chunk,
    push_blob_chunked,
    push_blob_monolithic,
    push_image,
    push_manifest,
    random_blob,
    start_upload,
)
from tests.support.server import RegistryProcess

T = TypeVar("T")
CLIENTS = 8


def in_parallel(registry: RegistryProcess, fn: Callable[[httpx.Client, int], T]) -> list[T]:
    def run(i: int) -> T:
        with httpx.Client(base_url=registry.url, timeout=60.0) as c:
            return fn(c, i)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(run, range(CLIENTS)))


def test_end4b_same_blob_from_eight_clients(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    data, digest = random_blob(2 * 1024 * 1024)
    statuses = in_parallel(
        registry, lambda c, i: push_blob_monolithic(c, repo, data, single_post=i % 2 == 0)
    )
    assert [r.status_code for r in statuses] == [201] * CLIENTS, [r.text for r in statuses]
    assert client.get(blob_path(repo, digest)).content == data


def test_end5_same_blob_chunked_from_eight_clients(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    data, digest = random_blob(300_000)
    results = in_parallel(
        registry, lambda c, i: push_blob_chunked(c, repo, data, 64 * 1024 + i * 1000)
    )
    assert [r.status_code for r in results] == [201] * CLIENTS, [r.text for r in results]
    assert client.get(blob_path(repo, digest)).content == data


def test_end5_one_session_continued_over_new_connections(
    registry: RegistryProcess, client: httpx.Client, repo: str
) -> None:
    # Every PATCH on its own connection: whichever worker gets it must find the session.
    data, digest = random_blob(64 * 1024)
    location = start_upload(client, repo)
    for i in range(16):
        with httpx.Client(base_url=registry.url, timeout=30.0) as c:
            r = patch_chunk(c, location, data[i * 4096 : (i + 1) * 4096], start=i * 4096)
            assert r.status_code == 202, r.text
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        r = c.put(location, params={"digest": digest})
    assert r.status_code == 201, r.text
    assert client.get(blob_path(repo, digest)).content == data


def test_end7_concurrent_tags_all_land_in_index_json(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    image = push_image(client, repo, "seed")

    def tag_many(c: httpx.Client, i: int) -> list[int]:
        return [push_manifest(c, repo, f"t{i}-{j}", image.manifest).status_code for j in range(5)]

    results = in_parallel(registry, tag_many)
    assert all(s == 201 for batch in results for s in batch), results
    expected = {"seed"} | {f"t{i}-{j}" for i in range(CLIENTS) for j in range(5)}
    assert set(client.get(f"/v2/{repo}/tags/list").json()["tags"]) == expected
    # index.json in storage is whole and has every tag once.
    index = json.loads(stored_bytes(registry.config, f"{repo}/index.json"))
    names = [
        d["annotations"]["org.opencontainers.image.ref.name"]
        for d in index["manifests"]
        if "org.opencontainers.image.ref.name" in d.get("annotations", {})
    ]
    assert sorted(names) == sorted(expected)


def test_end9_concurrent_deletes_and_pushes_keep_index_consistent(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    image = push_image(client, repo, "seed")
    for i in range(CLIENTS):
        assert push_manifest(client, repo, f"old{i}", image.manifest).status_code == 201

    def churn(c: httpx.Client, i: int) -> tuple[int, int]:
        deleted = c.delete(manifest_path(repo, f"old{i}")).status_code
        pushed = push_manifest(c, repo, f"new{i}", image.manifest).status_code
        return deleted, pushed

    assert in_parallel(registry, churn) == [(202, 201)] * CLIENTS
    tags = set(client.get(f"/v2/{repo}/tags/list").json()["tags"])
    assert tags == {"seed"} | {f"new{i}" for i in range(CLIENTS)}
