"""`extensions.lint` (zot's mandatory annotations) on a real server: an OCI image manifest
without them is refused with the spec's 400 MANIFEST_INVALID naming what it lacks, and
nothing of it is stored; labels of its config count; Docker manifests, indexes and
signatures are not linted; a manifest stored before the rule existed can be pushed again
under its tag, as in zot, but not given a new one."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.lint import LINT, MANDATORY, TEAM, VENDOR, lint_pushes, missing_of, push
from tests.support.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    assert_error,
    push_image,
    push_manifest,
)
from tests.support.server import base_config, running_registry


def test_manifests_without_the_mandatory_annotations_are_refused(tmp_path: Path) -> None:
    config = base_config(tmp_path / "root", extensions=LINT)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert lint_pushes(c, "team/app") == {
            "none": 400,
            "partial": 400,
            "labels": 201,
            "labels-case": 201,
            "complete": 201,
            "by-digest": 400,
            "index": 201,
            "notation": 201,
            "cosign": 201,
            "sha256-short.sig": 201,
            "artifact": 400,
        }
        refused, desc = push(c, "team/app", "again", {VENDOR: "v"})
        error = assert_error(refused, 400, "MANIFEST_INVALID")
        assert missing_of(refused) == [TEAM]
        assert error["detail"]["reference"] == "again"
        assert c.get(f"/v2/team/app/manifests/{desc['digest']}").status_code == 404
        tags = c.get("/v2/team/app/tags/list").json()["tags"]
        assert "again" not in tags and "none" not in tags
        assert missing_of(push(c, "team/app", "bare")[0]) == MANDATORY
        # Docker's manifests are not linted (zot: only OCI image manifests)
        docker = push_image(
            c,
            "team/app",
            "docker",
            media_type=DOCKER_MANIFEST,
            config_media_type=DOCKER_CONFIG,
            layer_media_type=DOCKER_LAYER,
        )
        assert c.head("/v2/team/app/manifests/docker").status_code == 200
        assert docker.media_type == DOCKER_MANIFEST


def test_a_manifest_stored_before_the_rule_keeps_its_tag(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with (
        running_registry(tmp_path, base_config(root)) as proc,
        httpx.Client(base_url=proc.url) as c,
    ):
        old = push_image(c, "team/old", "v1")
    config = base_config(root, extensions=LINT)
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert push_manifest(c, "team/old", "v1", old.manifest).status_code == 201
        assert push_manifest(c, "team/old", old.digest, old.manifest).status_code == 201
        moved = push_manifest(c, "team/old", "v2", old.manifest)
        assert_error(moved, 400, "MANIFEST_INVALID")
        assert missing_of(moved) == MANDATORY
