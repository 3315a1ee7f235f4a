"""Scrub through the real `ocireg scrub` command: report problems, never delete; on the
filesystem and on SeaweedFS + Redis (the test corrupts the file or the object)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import backend_registry_config
from tests.ops.conftest import BACKENDS, stored_view
from tests.support.oci import image_index, push_image, push_manifest, sha256_digest, unique_repo
from tests.support.server import RegistryProcess, run_cli, running_registry

PROBLEMS_FOUND = 2


@pytest.fixture(params=BACKENDS)
def scrub_registry(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RegistryProcess]:
    """A registry of its own: each test corrupts its storage."""
    config = backend_registry_config(tmp_path, request.param, request, workers=1)
    with running_registry(tmp_path, config) as proc:
        yield proc


def scrub(proc: RegistryProcess) -> tuple[int, list[dict[str, object]], dict[str, int]]:
    result = run_cli("scrub", str(proc.config_path))
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    return result.returncode, lines, summary


def test_scrub_of_intact_content_reports_nothing(scrub_registry: RegistryProcess) -> None:
    repo = unique_repo("scrub")
    with httpx.Client(base_url=scrub_registry.url) as c:
        a, b = push_image(c, repo, "v1", layers=2), push_image(c, repo)
        body, _ = image_index([a.descriptor(), b.descriptor()])
        assert push_manifest(c, repo, "multi", body, "application/vnd.oci.image.index.v1+json")
    code, lines, summary = scrub(scrub_registry)
    assert (code, lines) == (0, [])
    assert summary["repositories"] == 1
    assert summary["problems"] == 0
    assert summary["blobs"] == 8  # 2 manifests + 2 configs + 3 layers + the index


def test_scrub_reports_corrupt_and_missing_blobs_without_deleting(
    scrub_registry: RegistryProcess,
) -> None:
    repo = unique_repo("scrub")
    with httpx.Client(base_url=scrub_registry.url) as c:
        image = push_image(c, repo, "v1", layers=2)
        child = push_image(c, repo)
        body, _ = image_index([child.descriptor()])
        assert push_manifest(c, repo, "multi", body, "application/vnd.oci.image.index.v1+json")
    stored = stored_view(scrub_registry)
    corrupt = sha256_digest(image.layers[0])
    # Same size, only re-hashing can tell; the first byte changed (not set: a random first
    # byte is already "X" once in 256 runs).
    damaged = bytes([image.layers[0][0] ^ 0xFF]) + image.layers[0][1:]
    stored.write_blob(repo, corrupt, damaged)
    missing = sha256_digest(child.config)
    stored.remove_blob(repo, missing)

    code, lines, summary = scrub(scrub_registry)
    assert code == PROBLEMS_FOUND
    assert summary["problems"] == len(lines) == 3
    assert {"repository": repo, "problem": "blob_digest_mismatch", "blob": corrupt,
            "actual": sha256_digest(damaged)} in lines  # fmt: skip
    assert {"repository": repo, "problem": "blob_corrupt", "blob": corrupt,
            "manifest": image.digest, "tag": "v1"} in lines  # fmt: skip
    # The child of the tagged index is reported under the index's tag.
    assert {"repository": repo, "problem": "blob_missing", "blob": missing,
            "manifest": child.digest, "tag": "multi"} in lines  # fmt: skip
    assert stored.read_blob(repo, corrupt) == damaged  # reported, not deleted or "repaired"


def test_scrub_reports_repositories_an_older_version_put_inside_a_layout(
    tmp_path: Path,
) -> None:
    """Older versions accepted names like `x/blobs/sha256/<hex>` and `x/index.json`; scrub
    names what they left behind and removes nothing."""
    with running_registry(tmp_path) as proc, httpx.Client(base_url=proc.url) as c:
        repo = unique_repo("scrub")
        image = push_image(c, repo, "v1")
        root = proc.root
        blob_dir = root / repo / "blobs" / "sha256" / sha256_digest(image.layers[0])[7:]
        inside = [
            blob_dir.with_name("f" * 64),  # a directory where a blob would go
            root / repo / "blobs" / "index.json",  # a repository at <repo>/blobs
            root / "other" / "index.json",  # a directory where other's index would be
        ]
        for leftover in inside:
            leftover.mkdir(parents=True)
            (leftover / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (root / "other" / "index.json" / "index.json").write_text('{"manifests":[]}')
        (root / "other" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        code, lines, _ = scrub(proc)
        assert code == PROBLEMS_FOUND
        found = {(p["repository"], p["problem"], p.get("path")) for p in lines}
        blobs = f"{repo}/blobs"
        assert (repo, "layout_collision", f"{blobs}/sha256/{'f' * 64}/") in found
        assert (repo, "layout_collision", f"{blobs}/index.json/") in found
        assert ("other/index.json", "name_reserved", None) in found
        assert all(path.exists() for path in inside)
        assert c.get(f"/v2/{repo}/manifests/v1").content == image.manifest
