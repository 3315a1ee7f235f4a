"""`storage.dedupe` (zot's key, on by default) on local storage: a blob uploaded to several
repositories is kept once, as hard links of one file, whichever way it was uploaded; each
repository's copy outlives the others; `dedupe: false` keeps a file per repository."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.oci import (
    assert_image_pulls,
    push_blob,
    push_blob_chunked,
    push_blob_monolithic,
    push_image,
    push_manifest,
    random_bytes,
    sha256_digest,
)
from tests.support.server import base_config, running_registry, wait_until


def inode(root: Path, repo: str, digest: str) -> int:
    return (root / repo / "blobs" / "sha256" / digest.split(":")[1]).stat().st_ino


@pytest.mark.parametrize("dedupe", [True, False])
def test_one_blob_uploaded_to_three_repositories(tmp_path: Path, dedupe: bool) -> None:
    config = base_config(tmp_path / "root")
    config["storage"]["dedupe"] = dedupe
    root = tmp_path / "root"
    layer = random_bytes(300_000)
    digest = sha256_digest(layer)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert push_blob_chunked(c, "a/app", layer, 100_000).status_code == 201
        assert push_blob_monolithic(c, "b/app", layer).status_code == 201  # POST ?digest=
        assert push_blob_monolithic(c, "c/app", layer, single_post=False).status_code == 201
        inodes = {inode(root, repo, digest) for repo in ("a/app", "b/app", "c/app")}
        assert len(inodes) == (1 if dedupe else 3)
        # A manifest keeps a file of its own (its time is its push time in that repository).
        image = push_image(c, "a/app", "v1")
        for blob in (image.config, *image.layers):
            push_blob(c, "b/app", blob)
        assert push_manifest(c, "b/app", "v1", image.manifest).status_code == 201
        assert inode(root, "a/app", image.digest) != inode(root, "b/app", image.digest)
        assert c.delete(f"/v2/a/app/blobs/{digest}").status_code == 202
        for repo in ("b/app", "c/app"):
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == layer


def test_a_location_recorded_by_zot_does_not_fail_the_upload(tmp_path: Path) -> None:
    """zot's cache records absolute image-store paths; one that names nothing here is not
    linked to, and the upload succeeds (the new file becomes the location)."""
    config = base_config(tmp_path / "root")
    layer = random_bytes(1000)
    digest = sha256_digest(layer)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        db = sqlite3.connect(tmp_path / "root" / ".ocireg" / "meta.db")
        with contextlib.closing(db):
            db.execute(
                "INSERT OR REPLACE INTO blob_locations VALUES (?, ?)",
                (digest, f"/var/lib/zot/other/blobs/sha256/{digest.split(':')[1]}"),
            )
            db.commit()
        assert push_blob_monolithic(c, "a/app", layer).status_code == 201
        assert push_blob_monolithic(c, "b/app", layer).status_code == 201
        root = tmp_path / "root"
        assert inode(root, "a/app", digest) == inode(root, "b/app", digest)


def test_what_was_stored_before_is_deduped_when_the_server_starts(tmp_path: Path) -> None:
    """zot's start-up dedupe: copies written while dedupe was off become hard links of one
    file once a server with dedupe on starts; manifests keep a file each; every image still
    pulls whole."""
    root = tmp_path / "root"
    config = base_config(root)
    config["storage"]["dedupe"] = False
    repos = ("a/app", "b/app", "c/app")
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        first = push_image(c, repos[0], "v1", layers=2)
        for repo in repos[1:]:
            for blob in (first.config, *first.layers):
                push_blob(c, repo, blob)
            assert push_manifest(c, repo, "v1", first.manifest).status_code == 201
    blobs = [sha256_digest(b) for b in (first.config, *first.layers)]
    assert len({inode(root, repo, blobs[1]) for repo in repos}) == 3

    config["storage"]["dedupe"] = True
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:

        def linked() -> bool:
            return all(len({inode(root, repo, d) for repo in repos}) == 1 for d in blobs)

        wait_until(linked, timeout=30)
        assert len({inode(root, repo, first.digest) for repo in repos}) == 3
        for repo in repos:
            assert_image_pulls(c, dataclasses.replace(first, repo=repo), "v1")
