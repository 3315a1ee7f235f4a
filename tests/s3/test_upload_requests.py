"""What a client's blob push asks of the bucket, counted by the registry's metrics.

skopeo, podman, docker and crane push each blob as HEAD (is it there?), POST (a session),
PATCH (the bytes), then PUT `?digest=` without a body. On S3 every request to the bucket costs
the worker about 2 ms of CPU, so these counts are what a push of small blobs costs. One
worker, so that the PATCH and the PUT meet the same running hash (another worker would read
the session's bytes back to verify them, as it should)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import backend_registry_config
from tests.support.oci import (
    assert_error,
    blob_path,
    patch_chunk,
    push_blob,
    random_blob,
    start_upload,
    unique_repo,
)
from tests.support.reads import METRICS, storage_requests
from tests.support.server import RegistryProcess, running_registry


@pytest.fixture(scope="module")
def instance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("upload-requests")
    config = backend_registry_config(workdir, "s3", request, workers=1)
    config["extensions"] = METRICS
    with running_registry(workdir, config) as proc:
        yield proc


class Counted:
    """The bucket requests the instance sent during a `with` block, by operation."""

    def __init__(self, instance: RegistryProcess) -> None:
        self.instance = instance
        self.sent: dict[str, float] = {}

    def __enter__(self) -> Counted:
        self._before = storage_requests(self.instance)
        return self

    def __exit__(self, *exc: object) -> None:
        after = storage_requests(self.instance)
        self.sent = {
            op: n - self._before.get(op, 0)
            for op, n in after.items()
            if n != self._before.get(op, 0)
        }


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

        # The PUT without a body: the session's size, its state (which holds the bytes of a
        # small blob), the blob, and one request that ends the session. Its state is not
        # read and rewritten for the empty body.
        with Counted(instance) as put:
            r = client.put(r.headers["location"], params={"digest": digest})
            assert r.status_code == 201, r.text
        assert put.sent == {"HeadObject": 1, "GetObject": 1, "PutObject": 1, "DeleteObjects": 1}

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
        r = client.put(r.headers["location"], params={"digest": other})
        assert_error(r, 400, "DIGEST_INVALID")
        assert client.head(blob_path(repo, other)).status_code == 404
