"""What a manifest put asks the storage to check that the manifest's blobs are there.

A put looks at its blobs twice: first from what the worker found lately (it only spares the
client a write that would fail), then under the repository lock against the storage, unless
index.json lists the manifest already (garbage collection keeps a listed manifest's blobs).
So tagging a stored image again costs no request for its blobs, and a blob that went away
since a worker saw it is still refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import backend_registry_config
from tests.support.backends import s3_request
from tests.support.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    assert_error,
    descriptor,
    image_manifest,
    manifest_path,
    push_image,
    push_manifest,
    unique_repo,
)
from tests.support.reads import METRICS, retag, storage_requests
from tests.support.server import RegistryProcess, running_registry


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def instance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp(f"checks-{request.param}")
    config = backend_registry_config(workdir, request.param, request)
    config["extensions"] = METRICS
    with running_registry(workdir, config) as proc:
        yield proc


def remove_behind(instance: RegistryProcess, repo: str, digest: str) -> None:
    """Delete a stored blob without the registry: what another member's garbage collection,
    or an operator, does."""
    driver: dict[str, Any] = instance.config["storage"].get("storageDriver") or {}
    path = f"{repo}/blobs/{digest.replace(':', '/')}"
    if driver.get("name") != "s3":
        (Path(instance.config["storage"]["rootDirectory"]) / path).unlink()
        return
    root = driver["rootdirectory"].strip("/")
    weed_endpoint = driver["regionendpoint"]
    assert s3_request(weed_endpoint, "DELETE", f"{root}/{root}/{path}") in (200, 204)


def test_a_blob_gone_since_a_worker_saw_it_is_refused(instance: RegistryProcess) -> None:
    repo = unique_repo("checks")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        image = push_image(client, repo, "a")
    layer = descriptor(OCI_LAYER, image.layers[0])
    # Every worker sees the layer stored (a connection each: each may reach either worker).
    for _ in range(6):
        r = httpx.head(f"{instance.url}/v2/{repo}/blobs/{layer['digest']}")
        assert r.status_code == 200
    remove_behind(instance, repo, layer["digest"])
    body, _ = image_manifest(
        descriptor(OCI_CONFIG, image.config), [layer], annotations={"build": "2"}
    )
    for _ in range(4):  # through both workers
        with httpx.Client(base_url=instance.url, timeout=60) as client:
            r = push_manifest(client, repo, "b", body)
        assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    r = httpx.get(f"{instance.url}{manifest_path(repo, 'b')}")
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_tagging_a_stored_image_again_asks_for_none_of_its_blobs(
    instance: RegistryProcess,
) -> None:
    if instance.config["storage"].get("storageDriver") is None:
        pytest.skip("counts S3 requests")
    repo = unique_repo("checks")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        image = push_image(client, repo, "v0", layers=3)
    before = storage_requests(instance)
    for n in range(20):
        retag(instance, image, f"t{n}")
    heads = storage_requests(instance).get("HeadObject", 0) - before.get("HeadObject", 0)
    # Each put used to ask for the repository, the manifest and each of its 4 blobs, twice
    # for the blobs: 9 HEADs. Now a worker asks at most once for each in 30 s.
    assert heads < 20, heads
    for n in range(20):
        r = httpx.get(f"{instance.url}{manifest_path(repo, f't{n}')}")
        assert r.status_code == 200
        assert r.headers["docker-content-digest"] == image.digest
