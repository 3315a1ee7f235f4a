"""What a client's blob push and pull, and its manifest put, ask of the bucket, counted by
the registry's metrics.

skopeo, podman, docker and crane push each blob as HEAD (is it there?), POST (a session),
PATCH (the bytes), then PUT `?digest=` without a body, and pull it with one GET. On S3 every
request to the bucket costs the worker about 2 ms of CPU, so these counts are what a push
or a pull of small blobs costs. One worker, so that the PATCH and the PUT meet the same
running hash (another worker would read the session's bytes back to verify them, as it
should) and a blob's bytes kept by the worker are found by the next GET."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import backend_registry_config
from tests.support.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    absent_digest,
    assert_error,
    blob_path,
    descriptor,
    image_manifest,
    patch_chunk,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    start_upload,
    unique_repo,
)
from tests.support.reads import METRICS, Counted
from tests.support.server import RegistryProcess, running_registry


@pytest.fixture(scope="module")
def instance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("blob-requests")
    config = backend_registry_config(workdir, "s3", request, workers=1)
    config["extensions"] = METRICS
    with running_registry(workdir, config) as proc:
        yield proc


def test_a_client_push_of_a_small_blob(instance: RegistryProcess) -> None:
    repo = unique_repo("requests")
    data, digest = random_blob(4096)
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        push_blob(client, repo, random_blob(10)[0])  # the repository exists from here on

        # A blob that is not there: one HEAD, and no listing (which would look for a
        # "directory" of that name).
        with Counted(instance) as head:
            assert client.head(blob_path(repo, digest)).status_code == 404
        assert head.sent == {"HeadObject": 1}

        location = start_upload(client, repo)
        r = patch_chunk(client, location, data)
        assert r.status_code == 202, r.text

        # The PUT without a body: the session's state, read once for its size and for the
        # bytes of a small blob; the blob; and one request that ends the session. The state
        # is not rewritten for the empty body.
        with Counted(instance) as put:
            r = client.put(r.headers["location"], params={"digest": digest})
            assert r.status_code == 201, r.text
        assert put.sent == {"GetObject": 1, "PutObject": 1, "DeleteObjects": 1}

        r = client.get(blob_path(repo, digest))
        assert r.status_code == 200 and r.content == data
        assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")  # the session ended


def test_a_final_put_without_a_body_still_checks_the_digest(instance: RegistryProcess) -> None:
    repo = unique_repo("requests")
    data, _ = random_blob(4096)
    _, other = random_blob(4096)
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        location = start_upload(client, repo)
        r = patch_chunk(client, location, data)
        assert r.status_code == 202, r.text
        # The state read once for the size and kept for the abort; one request ends it.
        with Counted(instance) as put:
            r = client.put(r.headers["location"], params={"digest": other})
        assert_error(r, 400, "DIGEST_INVALID")
        assert put.sent == {"GetObject": 1, "DeleteObjects": 1}
        assert client.head(blob_path(repo, other)).status_code == 404


def test_a_blob_get_is_one_request(instance: RegistryProcess) -> None:
    repo, other = unique_repo("requests"), unique_repo("requests")
    large, large_digest = random_blob(200 << 10)
    small, small_digest = random_blob(4096)
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        for data, digest in ((large, large_digest), (small, small_digest)):
            push_blob(client, repo, data)
            # Mounted into another repository: the worker kept the small blob's bytes when
            # it was pushed, for `repo` only.
            r = client.post(f"/v2/{other}/blobs/uploads/", params={"mount": digest, "from": repo})
            assert r.status_code == 201, r.text

        # The size and the bytes from one GET, where a HEAD and a GET were sent before.
        with Counted(instance) as large_get:
            r = client.get(blob_path(other, large_digest))
        assert r.status_code == 200 and r.content == large
        assert r.headers["content-length"] == str(len(large))
        assert r.headers["docker-content-digest"] == large_digest
        assert large_get.sent == {"GetObject": 1}

        with Counted(instance) as small_get:
            r = client.get(blob_path(other, small_digest))
        assert r.status_code == 200 and r.content == small
        assert small_get.sent == {"GetObject": 1}

        # Kept by the worker now: only the look that the repository still has it.
        with Counted(instance) as kept:
            r = client.get(blob_path(other, small_digest))
        assert r.status_code == 200 and r.content == small
        assert kept.sent == {"HeadObject": 1}
        r = client.delete(blob_path(other, small_digest))
        assert r.status_code == 202, r.text
        assert_error(client.get(blob_path(other, small_digest)), 404, "BLOB_UNKNOWN")

        with Counted(instance) as missing:
            assert_error(client.get(blob_path(other, absent_digest())), 404, "BLOB_UNKNOWN")
        assert missing.sent == {"GetObject": 1}

        # A ranged GET still needs the size first (a range past the end is a 416).
        with Counted(instance) as ranged:
            r = client.get(blob_path(other, large_digest), headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == large[100:200]
        assert ranged.sent == {"HeadObject": 1, "GetObject": 1}


def test_a_manifest_put_asks_once_for_each_blob(instance: RegistryProcess) -> None:
    repo = unique_repo("requests")
    with httpx.Client(base_url=instance.url, timeout=60) as client:
        push_image(client, repo, "first")  # index.json read and kept from here on
        config = random_blob(300)[0]
        layers = [random_blob(2048)[0] for _ in range(6)]
        for blob in (config, *layers):
            push_blob(client, repo, blob)
        body, digest = image_manifest(
            descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, x) for x in layers]
        )
        # Under the repository lock, one HEAD per blob (sent a few at once), then the
        # manifest and index.json written. The manifest is not looked for first: on S3 the
        # look would cost what the write does.
        with Counted(instance) as put:
            r = push_manifest(client, repo, "second", body)
            assert r.status_code == 201, r.text
        assert put.sent == {"HeadObject": 7, "PutObject": 2}
        assert client.get(f"/v2/{repo}/manifests/{digest}").content == body

        # A blob missing among them: the first one missing is named, nothing is written.
        missing = [random_blob(100)[0] for _ in range(2)]
        named = [*layers[:3], missing[0], *layers[3:], missing[1]]
        body, digest = image_manifest(
            descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, x) for x in named]
        )
        r = push_manifest(client, repo, "third", body)
        assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
        assert (
            r.json()["errors"][0]["detail"]["digest"] == descriptor(OCI_LAYER, missing[0])["digest"]
        )
        assert_error(client.get(f"/v2/{repo}/manifests/third"), 404, "MANIFEST_UNKNOWN")
        assert_error(client.get(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")
