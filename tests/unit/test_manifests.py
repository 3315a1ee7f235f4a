"""Manifest parsing in-process: what a push may store, and the exact error for what not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
    parse_stored,
)

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
C, L1, L2, M = (Digest.of(x) for x in (b"config", b"l1", b"l2", b"m"))


def descriptor(digest: Digest, media_type: str = LAYER_TYPE, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": 1, **extra}


def image(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(C, CONFIG_TYPE),
        "layers": [descriptor(L1), descriptor(L2)],
        **extra,
    }


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_image_manifest_references_config_and_layers() -> None:
    m = parse_manifest(body(image()), OCI_MANIFEST)
    assert (m.media_type, m.blobs, m.children) == (OCI_MANIFEST, (C, L1, L2), ())
    assert not m.is_index
    assert m.artifact_type == CONFIG_TYPE  # no artifactType: the config's media type
    assert m.declared_artifact_type is None


def test_index_references_its_manifests() -> None:
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(M, OCI_MANIFEST)]}
    m = parse_manifest(body(doc), None)
    assert (m.media_type, m.blobs, m.children, m.is_index) == (OCI_INDEX, (), (M,), True)


@pytest.mark.parametrize(
    ("doc", "content_type", "expected"),
    [
        ({**image(), "mediaType": None}, None, OCI_MANIFEST),  # guessed: no `manifests`
        ({"schemaVersion": 2, "manifests": []}, None, OCI_INDEX),  # guessed: `manifests`
        ({**image(), "mediaType": None}, DOCKER_MANIFEST, DOCKER_MANIFEST),
        ({"schemaVersion": 2, "manifests": []}, DOCKER_LIST, DOCKER_LIST),
        (image(), "application/json", OCI_MANIFEST),  # not a manifest type: the body's
        (image(), f"{OCI_MANIFEST}; charset=utf-8", OCI_MANIFEST),
    ],
)
def test_media_type_is_the_requests_else_the_bodys_else_guessed(
    doc: dict[str, Any], content_type: str | None, expected: str
) -> None:
    doc = {k: v for k, v in doc.items() if v is not None}
    assert parse_manifest(body(doc), content_type).media_type == expected


def test_foreign_layers_are_not_required_blobs() -> None:
    doc = image(layers=[descriptor(L1), descriptor(L2, FOREIGN)])
    assert parse_manifest(body(doc), None).blobs == (C, L1)


def test_artifact_subject_and_annotations() -> None:
    doc = image(
        artifactType="application/vnd.example+json",
        subject=descriptor(M, OCI_MANIFEST),
        annotations={"a": "b"},
    )
    m = parse_manifest(body(doc), None)
    assert (m.subject, m.artifact_type, m.declared_artifact_type, m.annotations) == (
        M,
        "application/vnd.example+json",
        "application/vnd.example+json",
        {"a": "b"},
    )


@pytest.mark.parametrize(
    ("raw", "content_type", "message"),
    [
        (b"{not json", None, "manifest is not valid JSON"),
        (b"\xff\xfe", None, "manifest is not valid JSON"),
        (b"[]", None, "manifest is not a JSON object"),
        (body({**image(), "schemaVersion": 1}), None, "only schemaVersion 2"),
        (body({**image(), "mediaType": 3}), None, "mediaType must be a string"),
        (body(image()), DOCKER_MANIFEST, "mediaType in the body differs from Content-Type"),
        (body({**image(), "mediaType": "text/plain"}), None, "unsupported manifest media type"),
        (body({k: v for k, v in image().items() if k != "config"}), None, "has no config"),
        (body(image(layers={})), None, "layers must be a list"),
        (body(image(layers=["x"])), None, "layers[0] is not a descriptor"),
        (body(image(layers=[{"size": 1, "mediaType": LAYER_TYPE}])), None, "layers[0].digest"),
        (body(image(layers=[descriptor(L1, size=-1)])), None, "layers[0].size"),
        (body(image(layers=[descriptor(L1, size=True)])), None, "layers[0].size"),
        (
            body(image(layers=[{"digest": str(L1), "size": 1}])),
            None,
            "layers[0].mediaType is missing",
        ),
        (
            body(image(layers=[{**descriptor(L1), "digest": "sha256:short"}])),
            None,
            "layers[0].digest is not a valid digest",
        ),
        (body({"schemaVersion": 2, "mediaType": OCI_INDEX}), None, "index has no manifests"),
        (
            body({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{}]}),
            None,
            "manifests[0].digest is missing",
        ),
        (body(image(subject="x")), None, "subject is not a descriptor"),
        (body(image(artifactType=1)), None, "artifactType must be a string"),
        (body(image(annotations=["a"])), None, "annotations must be a map"),
        (body(image(annotations=[])), None, "annotations must be a map"),
        (body(image(annotations={"a": 1})), None, "annotations must be a map of strings"),
        (body({**image(), "schemaVersion": 2.0}), None, "only schemaVersion 2"),
        (body(image(layers=[descriptor(L1, size=1 << 63)])), None, "layers[0].size"),
        (body(image(layers=[descriptor(L1, urls="x")])), None, "layers[0].urls"),
        (body(image(layers=[descriptor(L1, annotations={"a": []})])), None, "annotations"),
        (body(image(layers=[descriptor(L1, artifactType=1)])), None, "layers[0].artifactType"),
        (body(image(subject=descriptor(M, data=5))), None, "subject.data must be a string"),
        (
            body({"schemaVersion": 2, "manifests": [descriptor(M, OCI_MANIFEST, platform="x")]}),
            None,
            "manifests[0].platform must be an object",
        ),
        (
            body(
                {
                    "schemaVersion": 2,
                    "manifests": [descriptor(M, OCI_MANIFEST, platform={"os": 5})],
                }
            ),
            None,
            "manifests[0].platform.os must be a string",
        ),
        (
            body(
                {
                    "schemaVersion": 2,
                    "manifests": [
                        descriptor(M, OCI_MANIFEST, platform={"os": "linux", "os.features": "x"})
                    ],
                }
            ),
            None,
            "os.features must be a list of strings",
        ),
        (b"\xef\xbb\xbf" + body(image()), None, "manifest is not valid JSON"),
        (body(image()).decode().encode("utf-16"), None, "manifest is not valid JSON"),
    ],
)
def test_invalid_manifest_is_400_manifest_invalid(
    raw: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(RegistryError) as info:
        parse_manifest(raw, content_type)
    err = info.value
    assert (err.status, err.code) == (400, ErrorCode.MANIFEST_INVALID)
    assert message in err.message
    assert json.loads(err.body())["errors"][0]["code"] == "MANIFEST_INVALID"


def test_parse_stored_is_best_effort() -> None:
    assert parse_stored(b"{not json", None) is None
    stored = parse_stored(body(image()), OCI_MANIFEST)
    assert stored is not None and stored.blobs == (C, L1, L2)


def test_a_stored_manifest_without_layers_is_read_though_a_push_is_refused() -> None:
    """The image spec's schema requires `layers` and a push without it is refused (as zot
    refuses it); one already stored (an older ocireg took it) is still read for what it
    names: its referrers, search and GC entries do not vanish."""
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2}
    config["digest"] = "sha256:" + "4" * 64
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config}).encode()
    with pytest.raises(RegistryError):
        parse_manifest(body, OCI_MANIFEST)
    stored = parse_stored(body, OCI_MANIFEST)
    assert stored is not None and [str(d) for d in stored.blobs] == [config["digest"]]
