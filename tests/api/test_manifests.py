"""end-3 (GET/HEAD), end-7 (PUT) and end-9 (DELETE) on /v2/<name>/manifests/<reference>."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MAX_MANIFEST_BYTES,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    absent_digest,
    assert_error,
    descriptor,
    encode_json,
    image_index,
    image_manifest,
    manifest_path,
    push_blob,
    push_image,
    push_manifest,
    random_bytes,
    sha256_digest,
    sha512_digest,
)


def tags_of(client: httpx.Client, repo: str) -> list[str]:
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    return list(r.json().get("tags") or [])


def pushed_blobs(client: httpx.Client, repo: str) -> tuple[dict[str, object], dict[str, object]]:
    """A config and a layer pushed to `repo`, as descriptors."""
    config = encode_json({"os": "linux", "architecture": "arm64", "n": random_bytes(4).hex()})
    layer = random_bytes(300)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    return descriptor(OCI_CONFIG, config), descriptor(OCI_LAYER, layer)


# --- end-7 / end-3: round trips ------------------------------------------------------------


def test_end7_put_by_tag_is_201_with_location_and_digest(client: httpx.Client, repo: str) -> None:
    config, layer = pushed_blobs(client, repo)
    body, digest = image_manifest(config, [layer])
    r = push_manifest(client, repo, "v1", body)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    location = r.headers["location"]
    got = client.get(location)
    assert got.status_code == 200
    assert got.content == body


def test_end7_no_oci_subject_header_without_subject(client: httpx.Client, repo: str) -> None:
    config, layer = pushed_blobs(client, repo)
    body, _ = image_manifest(config, [layer])
    r = push_manifest(client, repo, "v1", body)
    assert r.status_code == 201
    assert "oci-subject" not in r.headers


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_end3_get_returns_bytes_type_and_digest(client: httpx.Client, repo: str, by: str) -> None:
    image = push_image(client, repo, "latest", layers=2)
    ref = "latest" if by == "tag" else image.digest
    r = client.get(manifest_path(repo, ref), headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200, r.text
    assert r.content == image.manifest
    assert r.headers["content-type"] == OCI_MANIFEST
    assert r.headers["docker-content-digest"] == image.digest
    assert int(r.headers["content-length"]) == len(image.manifest)


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_end3_head_has_headers_and_no_body(client: httpx.Client, repo: str, by: str) -> None:
    image = push_image(client, repo, "latest")
    ref = "latest" if by == "tag" else image.digest
    r = client.head(manifest_path(repo, ref))
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-type"] == OCI_MANIFEST
    assert r.headers["docker-content-digest"] == image.digest
    assert int(r.headers["content-length"]) == len(image.manifest)


def test_end3_manifest_served_byte_for_byte(client: httpx.Client, repo: str) -> None:
    # Indentation, key order and trailing whitespace are the pusher's: the digest covers them.
    config, layer = pushed_blobs(client, repo)
    doc = {"layers": [layer], "config": config, "mediaType": OCI_MANIFEST, "schemaVersion": 2}
    body = (json.dumps(doc, indent=3) + "\n\n").encode()
    r = push_manifest(client, repo, "pretty", body)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == sha256_digest(body)
    for ref in ("pretty", sha256_digest(body)):
        got = client.get(manifest_path(repo, ref))
        assert got.content == body


def test_end7_put_by_digest_is_untagged(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "other")
    image = push_image(client, repo)  # by digest
    r = client.get(manifest_path(repo, image.digest))
    assert r.status_code == 200
    assert r.content == image.manifest
    assert tags_of(client, repo) == ["other"]


def test_end7_same_manifest_under_two_tags(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "a")
    assert push_manifest(client, repo, "b", image.manifest).status_code == 201
    for tag in ("a", "b"):
        assert client.get(manifest_path(repo, tag)).headers["docker-content-digest"] == image.digest


def test_end7_retag_moves_the_tag(client: httpx.Client, repo: str) -> None:
    first = push_image(client, repo, "moving")
    second = push_image(client, repo, "moving")
    r = client.get(manifest_path(repo, "moving"))
    assert r.headers["docker-content-digest"] == second.digest
    # The old manifest is still there by digest.
    assert client.get(manifest_path(repo, first.digest)).content == first.manifest


def test_end7_put_same_manifest_twice_is_201(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    r = push_manifest(client, repo, "v1", image.manifest)
    assert r.status_code == 201
    assert tags_of(client, repo) == ["v1"]


def test_end7_sha512_digest_reference(client: httpx.Client, repo: str) -> None:
    config, layer = pushed_blobs(client, repo)
    body, _ = image_manifest(config, [layer])
    digest = sha512_digest(body)
    r = push_manifest(client, repo, digest, body)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    got = client.get(manifest_path(repo, digest))
    assert got.status_code == 200
    assert got.content == body


def test_end7_layers_with_sha512_digests(client: httpx.Client, repo: str) -> None:
    config = encode_json({"os": "linux"})
    layer = random_bytes(100)
    push_blob(client, repo, config)
    r = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": sha512_digest(layer)}, content=layer
    )
    assert r.status_code == 201, r.text
    layer_desc = {"mediaType": OCI_LAYER, "digest": sha512_digest(layer), "size": len(layer)}
    body, _ = image_manifest(descriptor(OCI_CONFIG, config), [layer_desc])
    r = push_manifest(client, repo, "v512", body)
    assert r.status_code == 201, r.text


# --- other manifest kinds ------------------------------------------------------------------


def test_end7_oci_index(client: httpx.Client, repo: str) -> None:
    amd = push_image(client, repo)
    arm = push_image(client, repo)
    body, digest = image_index(
        [
            amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
            arm.descriptor(platform={"architecture": "arm64", "os": "linux"}),
        ]
    )
    r = push_manifest(client, repo, "multi", body, OCI_INDEX)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    got = client.get(manifest_path(repo, "multi"))
    assert got.content == body
    assert got.headers["content-type"] == OCI_INDEX


def test_end7_docker_schema2_manifest(client: httpx.Client, repo: str) -> None:
    image = push_image(
        client,
        repo,
        "docker",
        media_type=DOCKER_MANIFEST,
        config_media_type=DOCKER_CONFIG,
        layer_media_type=DOCKER_LAYER,
    )
    got = client.get(manifest_path(repo, "docker"))
    assert got.status_code == 200
    assert got.content == image.manifest
    assert got.headers["content-type"] == DOCKER_MANIFEST
    head = client.head(manifest_path(repo, image.digest))
    assert head.headers["content-type"] == DOCKER_MANIFEST


def test_end7_docker_manifest_list(client: httpx.Client, repo: str) -> None:
    child = push_image(
        client,
        repo,
        media_type=DOCKER_MANIFEST,
        config_media_type=DOCKER_CONFIG,
        layer_media_type=DOCKER_LAYER,
    )
    body, digest = image_index(
        [child.descriptor(platform={"architecture": "amd64", "os": "linux"})],
        media_type=DOCKER_LIST,
    )
    r = push_manifest(client, repo, "list", body, DOCKER_LIST)
    assert r.status_code == 201, r.text
    got = client.get(manifest_path(repo, digest))
    assert got.content == body
    assert got.headers["content-type"] == DOCKER_LIST


def test_end7_artifact_manifest_with_empty_config(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"{}")
    payload = random_bytes(64)
    push_blob(client, repo, payload)
    body, digest = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        [descriptor("application/vnd.example.thing", payload)],
        artifact_type="application/vnd.example.artifact",
        annotations={"org.example.note": "hello"},
    )
    r = push_manifest(client, repo, "artifact", body)
    assert r.status_code == 201, r.text
    got = client.get(manifest_path(repo, "artifact"))
    assert got.content == body
    assert got.headers["docker-content-digest"] == digest


def test_end7_subject_sets_oci_subject_header(client: httpx.Client, repo: str) -> None:
    subject = push_image(client, repo, "base")
    push_blob(client, repo, b"{}")
    body, _ = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        [descriptor(OCI_EMPTY, b"{}")],
        artifact_type="application/vnd.example.sig",
        subject=subject.descriptor(),
    )
    r = push_manifest(client, repo, sha256_digest(body), body)
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == subject.digest


def test_end7_subject_may_be_missing(client: httpx.Client, repo: str) -> None:
    # Referrers may arrive before their subject: a missing subject is not a missing blob.
    push_blob(client, repo, b"{}")
    missing = {"mediaType": OCI_MANIFEST, "digest": absent_digest(), "size": 1234}
    body, digest = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        [descriptor(OCI_EMPTY, b"{}")],
        artifact_type="application/vnd.example.sig",
        subject=missing,
    )
    r = push_manifest(client, repo, digest, body)
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == missing["digest"]


def test_end7_index_with_subject_sets_oci_subject(client: httpx.Client, repo: str) -> None:
    subject = push_image(client, repo, "base")
    child = push_image(client, repo)
    body, digest = image_index(
        [child.descriptor()], subject=subject.descriptor(), artifact_type="application/vnd.x"
    )
    r = push_manifest(client, repo, digest, body, OCI_INDEX)
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == subject.digest


# --- end-7 errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[]",
        b'"a string"',
        b"\xff\xfe\x00",
    ],
)
def test_end7_invalid_json_is_400_manifest_invalid(
    client: httpx.Client, repo: str, body: bytes
) -> None:
    assert_error(push_manifest(client, repo, "bad", body), 400, "MANIFEST_INVALID")


SCHEMA_BREAKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "schema-version-1": lambda m: {**m, "schemaVersion": 1},
    "no-schema-version": lambda m: {k: v for k, v in m.items() if k != "schemaVersion"},
    "no-config": lambda m: {k: v for k, v in m.items() if k != "config"},
    "layers-not-a-list": lambda m: {**m, "layers": "not-a-list"},
    # required by the image spec's schema, as zot checks (an empty list is fine)
    "no-layers": lambda m: {k: v for k, v in m.items() if k != "layers"},
    "config-digest-malformed": lambda m: {
        **m,
        "config": {"mediaType": OCI_CONFIG, "digest": "sha256:nothex", "size": 2},
    },
    "layer-without-digest": lambda m: {**m, "layers": [{"mediaType": OCI_LAYER, "size": 3}]},
    # The body says index while Content-Type says image manifest.
    "media-type-mismatch": lambda m: {**m, "mediaType": OCI_INDEX},
}


@pytest.mark.parametrize("break_", sorted(SCHEMA_BREAKS))
def test_end7_schema_errors_are_400_manifest_invalid(
    client: httpx.Client, repo: str, break_: str
) -> None:
    config, layer = pushed_blobs(client, repo)
    good = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
    r = push_manifest(client, repo, "broken", encode_json(SCHEMA_BREAKS[break_](good)))
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_error(client.get(manifest_path(repo, "broken")), 404, "MANIFEST_UNKNOWN")


def test_end7_index_schema_error_is_400(client: httpx.Client, repo: str) -> None:
    r = push_manifest(
        client, repo, "idx", encode_json({"schemaVersion": 2, "manifests": "x"}), OCI_INDEX
    )
    assert_error(r, 400, "MANIFEST_INVALID")


def test_end7_missing_layer_is_400_manifest_blob_unknown(client: httpx.Client, repo: str) -> None:
    config, _ = pushed_blobs(client, repo)
    missing = descriptor(OCI_LAYER, random_bytes(50))
    body, _ = image_manifest(config, [missing])
    assert_error(push_manifest(client, repo, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(manifest_path(repo, "v1")), 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


def test_end7_missing_config_is_400_manifest_blob_unknown(client: httpx.Client, repo: str) -> None:
    _, layer = pushed_blobs(client, repo)
    missing = descriptor(OCI_CONFIG, encode_json({"missing": random_bytes(8).hex()}))
    body, _ = image_manifest(missing, [layer])
    assert_error(push_manifest(client, repo, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")


def test_end7_missing_index_child_is_400_manifest_blob_unknown(
    client: httpx.Client, repo: str
) -> None:
    present = push_image(client, repo)
    absent = {"mediaType": OCI_MANIFEST, "digest": absent_digest(), "size": 500}
    body, _ = image_index([present.descriptor(), absent])
    r = push_manifest(client, repo, "multi", body, OCI_INDEX)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_end7_layer_of_another_repo_is_unknown(client: httpx.Client, repo: str) -> None:
    other = push_image(client, repo + "-other", "v1")
    push_blob(client, repo, other.config)
    body, _ = image_manifest(
        descriptor(OCI_CONFIG, other.config), [descriptor(OCI_LAYER, other.layers[0])]
    )
    assert_error(push_manifest(client, repo, "v1", body), 400, "MANIFEST_BLOB_UNKNOWN")


def test_end7_digest_reference_mismatch_is_400_digest_invalid(
    client: httpx.Client, repo: str
) -> None:
    config, layer = pushed_blobs(client, repo)
    body, digest = image_manifest(config, [layer])
    r = push_manifest(client, repo, absent_digest(), body)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_error(client.get(manifest_path(repo, digest)), 404, "MANIFEST_UNKNOWN")


def test_end7_sha512_reference_mismatch_is_400(client: httpx.Client, repo: str) -> None:
    config, layer = pushed_blobs(client, repo)
    body, _ = image_manifest(config, [layer])
    r = push_manifest(client, repo, sha512_digest(body + b" "), body)
    assert_error(r, 400, "DIGEST_INVALID")


def padded_manifest(client: httpx.Client, repo: str, size: int) -> tuple[bytes, str]:
    """A valid manifest padded with an annotation to exactly `size` bytes."""
    config, layer = pushed_blobs(client, repo)
    body, _ = image_manifest(config, [layer], annotations={"pad": ""})
    pad = size - len(body)
    assert pad >= 0
    body, digest = image_manifest(config, [layer], annotations={"pad": "x" * pad})
    assert len(body) == size
    return body, digest


def test_end7_manifest_over_4mib_is_413(client: httpx.Client, repo: str) -> None:
    body, _ = padded_manifest(client, repo, MAX_MANIFEST_BYTES + 1)
    r = push_manifest(client, repo, "huge", body)
    assert_error(r, 413, "MANIFEST_INVALID")


def test_end7_manifest_far_over_limit_still_gets_413(client: httpx.Client, repo: str) -> None:
    # The client must see the 413, not a reset, even when it keeps sending a big body.
    body = b'{"schemaVersion":2,"pad":"' + b"y" * (20 * 1024 * 1024) + b'"}'
    r = push_manifest(client, repo, "huge", body)
    assert_error(r, 413, "MANIFEST_INVALID")
    # The connection the server answered on must still be usable or cleanly closed.
    assert client.get("/v2/").status_code == 200


def test_end7_manifest_of_exactly_4mib_is_accepted(client: httpx.Client, repo: str) -> None:
    body, digest = padded_manifest(client, repo, MAX_MANIFEST_BYTES)
    r = push_manifest(client, repo, "big", body)
    assert r.status_code == 201, r.text[:300]
    assert client.get(manifest_path(repo, digest)).content == body


@pytest.mark.parametrize("tag", ["-leading-dash", ".dot", "a" * 129, "has space", "ümlaut"])
def test_end7_invalid_tag_is_400(client: httpx.Client, repo: str, tag: str) -> None:
    image = push_image(client, repo, "ok")
    r = push_manifest(client, repo, tag, image.manifest)
    assert_error(r, 400, ("MANIFEST_INVALID", "NAME_INVALID"))


def test_end7_longest_valid_tag(client: httpx.Client, repo: str) -> None:
    tag = "T" + "a" * 127
    image = push_image(client, repo, tag)
    assert client.get(manifest_path(repo, tag)).content == image.manifest


@pytest.mark.parametrize("ref", ["sha256:nothex", "sha256:" + "0" * 10, "md5:" + "0" * 32])
def test_end7_malformed_digest_reference_is_400(client: httpx.Client, repo: str, ref: str) -> None:
    image = push_image(client, repo, "ok")
    assert_error(push_manifest(client, repo, ref, image.manifest), 400, "DIGEST_INVALID")


# --- end-3 errors --------------------------------------------------------------------------


def test_end3_unknown_tag_is_404_manifest_unknown(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "exists")
    assert_error(client.get(manifest_path(repo, "nope")), 404, "MANIFEST_UNKNOWN")


def test_end3_unknown_digest_is_404_manifest_unknown(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "exists")
    assert_error(client.get(manifest_path(repo, absent_digest())), 404, "MANIFEST_UNKNOWN")


def test_end3_head_unknown_is_404_without_body(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "exists")
    r = client.head(manifest_path(repo, "nope"))
    assert r.status_code == 404
    assert r.content == b""


def test_end3_unknown_repo_is_404(client: httpx.Client, repo: str) -> None:
    r = client.get(manifest_path(repo, "latest"))
    assert_error(r, 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


def test_end3_blob_digest_is_not_a_manifest(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "exists")
    r = client.get(manifest_path(repo, sha256_digest(image.layers[0])))
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_end3_invalid_reference_is_404_manifest_unknown(client: httpx.Client, repo: str) -> None:
    # The conformance suite pulls `.INVALID_MANIFEST_NAME` and expects 404: on GET and HEAD a
    # reference that is not a valid tag is just a manifest that cannot exist.
    push_image(client, repo, "exists")
    ref = ".INVALID_MANIFEST_NAME"
    assert_error(client.get(manifest_path(repo, ref)), 404, "MANIFEST_UNKNOWN")
    assert client.head(manifest_path(repo, ref)).status_code == 404


def test_end3_malformed_digest_is_400_or_404(client: httpx.Client, repo: str) -> None:
    # The spec allows either answer for a digest that cannot parse; both must be the envelope.
    push_image(client, repo, "exists")
    r = client.get(manifest_path(repo, "sha256:nothex"))
    if r.status_code == 404:
        assert_error(r, 404, "MANIFEST_UNKNOWN")
    else:
        assert_error(r, 400, "DIGEST_INVALID")


# --- end-9: DELETE -------------------------------------------------------------------------


def test_end9_delete_by_tag_removes_only_the_tag(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "a")
    assert push_manifest(client, repo, "b", image.manifest).status_code == 201
    r = client.delete(manifest_path(repo, "a"))
    assert r.status_code == 202, r.text
    assert_error(client.get(manifest_path(repo, "a")), 404, "MANIFEST_UNKNOWN")
    assert client.get(manifest_path(repo, image.digest)).content == image.manifest
    assert client.get(manifest_path(repo, "b")).content == image.manifest
    assert tags_of(client, repo) == ["b"]


def test_end9_delete_by_digest_removes_manifest_and_its_tags(
    client: httpx.Client, repo: str
) -> None:
    image = push_image(client, repo, "a")
    keep = push_image(client, repo, "keep")
    assert push_manifest(client, repo, "b", image.manifest).status_code == 201
    r = client.delete(manifest_path(repo, image.digest))
    assert r.status_code == 202, r.text
    assert_error(client.get(manifest_path(repo, image.digest)), 404, "MANIFEST_UNKNOWN")
    for tag in ("a", "b"):
        assert_error(client.get(manifest_path(repo, tag)), 404, "MANIFEST_UNKNOWN")
    assert client.head(manifest_path(repo, image.digest)).status_code == 404
    assert tags_of(client, repo) == ["keep"]
    assert client.get(manifest_path(repo, "keep")).content == keep.manifest


def test_end9_delete_unknown_tag_is_404(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "exists")
    assert_error(client.delete(manifest_path(repo, "nope")), 404, "MANIFEST_UNKNOWN")


def test_end9_delete_unknown_digest_is_404(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "exists")
    assert_error(client.delete(manifest_path(repo, absent_digest())), 404, "MANIFEST_UNKNOWN")


def test_end9_delete_twice_is_404(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "x")
    assert client.delete(manifest_path(repo, image.digest)).status_code == 202
    assert_error(client.delete(manifest_path(repo, image.digest)), 404, "MANIFEST_UNKNOWN")


def test_end9_delete_in_unknown_repo_is_404(client: httpx.Client, repo: str) -> None:
    r = client.delete(manifest_path(repo, absent_digest()))
    assert_error(r, 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


def test_end9_manifest_can_be_pushed_again_after_delete(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "x")
    assert client.delete(manifest_path(repo, image.digest)).status_code == 202
    assert push_manifest(client, repo, "x", image.manifest).status_code == 201
    assert client.get(manifest_path(repo, "x")).content == image.manifest


def test_end9_delete_of_a_manifest_an_index_names_is_405_denied(
    client: httpx.Client, repo: str
) -> None:
    """zot's rule: one platform of a multi-arch image cannot be deleted while the index
    names it (by digest; the child's own tag can go). Once the index is gone, it can."""
    amd = push_image(client, repo, "amd")
    arm = push_image(client, repo)
    body, digest = image_index([amd.descriptor(), arm.descriptor()])
    assert push_manifest(client, repo, "multi", body, OCI_INDEX).status_code == 201
    for child in (amd, arm):
        assert_error(client.delete(manifest_path(repo, child.digest)), 405, "DENIED")
        assert client.get(manifest_path(repo, child.digest)).content == child.manifest
    assert client.delete(manifest_path(repo, "amd")).status_code == 202
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["multi"]
    assert client.delete(manifest_path(repo, digest)).status_code == 202
    assert client.delete(manifest_path(repo, amd.digest)).status_code == 202
    assert_error(client.get(manifest_path(repo, amd.digest)), 404, "MANIFEST_UNKNOWN")
