"""The storage directory is an OCI image layout per repository (zot's layout), read directly
from disk so that any OCI-layout tool, and zot, can use it."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    image_index,
    push_blob_monolithic,
    push_image,
    push_manifest,
    sha256_digest,
    sha512_digest,
    unique_repo,
    uploads_path,
)
from tests.support.server import RegistryProcess

# It reads the files on disk; on S3 the same layout is checked by tests/s3/test_backend.py.
pytestmark = pytest.mark.skipif(
    os.environ.get("OCIREG_TEST_BACKEND") == "s3", reason="reads the local disk layout"
)

REF_NAME = "org.opencontainers.image.ref.name"


def test_each_repository_is_an_oci_image_layout(
    client: httpx.Client, registry: RegistryProcess, repo: str
) -> None:
    image = push_image(client, repo, "v1", layers=2)
    assert push_manifest(client, repo, "also", image.manifest).status_code == 201
    untagged = push_image(client, repo)
    index_body, index_digest = image_index([untagged.descriptor()])
    assert push_manifest(client, repo, "idx", index_body, OCI_INDEX).status_code == 201
    big_data = b"sha512 blob"
    assert push_blob_monolithic(client, repo, big_data, sha512_digest(big_data)).status_code == 201

    layout = registry.root / repo
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}

    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2
    tagged = {
        d["annotations"][REF_NAME]: d
        for d in index["manifests"]
        if REF_NAME in d.get("annotations", {})
    }
    assert set(tagged) == {"v1", "also", "idx"}
    for tag in ("v1", "also"):
        assert tagged[tag]["digest"] == image.digest
        assert tagged[tag]["mediaType"] == OCI_MANIFEST
        assert tagged[tag]["size"] == len(image.manifest)
    assert tagged["idx"]["digest"] == index_digest
    assert tagged["idx"]["mediaType"] == OCI_INDEX
    # Manifests pushed by digest are in index.json too (untagged), as zot keeps them.
    assert untagged.digest in {d["digest"] for d in index["manifests"]}

    blobs = layout / "blobs" / "sha256"
    for content in [image.manifest, image.config, *image.layers, index_body, untagged.manifest]:
        path = blobs / sha256_digest(content).split(":")[1]
        assert path.read_bytes() == content
    sha512_path = layout / "blobs" / "sha512" / hashlib.sha512(big_data).hexdigest()
    assert sha512_path.read_bytes() == big_data

    # Every blob file is named after the digest of its bytes (nothing half-written is visible).
    for path in blobs.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


@pytest.mark.parametrize("inner", ["", "/inner"])
def test_a_name_that_lands_on_a_file_of_the_root_is_name_invalid(
    client: httpx.Client, registry: RegistryProcess, repo: str, inner: str
) -> None:
    """A zot root holds files beside the repositories (`cache.db`, with dedupe, zot's
    default): a name that is such a file, or goes through one, can never be a repository.
    That is the name's fault (400), not storage that cannot serve (503: clients retry)."""
    beside = registry.root / repo
    beside.parent.mkdir(parents=True, exist_ok=True)
    beside.write_bytes(b"a zot cache.db")
    name = repo + inner
    image = push_image(client, unique_repo("api-layout"), "v1")
    assert_error(client.post(uploads_path(name)), 400, "NAME_INVALID")
    monolithic = client.post(
        uploads_path(name), params={"digest": sha256_digest(b"x")}, content=b"x"
    )
    assert_error(monolithic, 400, "NAME_INVALID")
    assert_error(push_manifest(client, name, "v1", image.manifest), 400, "NAME_INVALID")
    assert beside.read_bytes() == b"a zot cache.db"
