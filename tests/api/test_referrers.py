"""end-12a / end-12b: GET /v2/<name>/referrers/<digest>[?artifactType=]."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    absent_digest,
    assert_error,
    descriptor,
    encode_json,
    image_index,
    image_manifest,
    manifest_path,
    push_artifact,
    push_blob,
    push_image,
    push_manifest,
    random_bytes,
)

SBOM = "application/vnd.example.sbom.v1"
SIG_CONFIG = "application/vnd.example.signature.config.v1+json"
OLD = "application/vnd.example.legacy.v1"


def referrers(
    client: httpx.Client, repo: str, digest: str, artifact_type: str | None = None
) -> httpx.Response:
    params = {"artifactType": artifact_type} if artifact_type else None
    return client.get(f"/v2/{repo}/referrers/{digest}", params=params)


def listed(r: httpx.Response) -> list[dict[str, Any]]:
    """Check the response is a referrers index and return its descriptors."""
    assert r.status_code == 200, r.text
    # Exactly this type, with no parameters: clients compare it as a string.
    assert r.headers["content-type"] == OCI_INDEX
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    manifests: list[dict[str, Any]] = body["manifests"]
    assert isinstance(manifests, list)
    return manifests


def by_digest(descs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {d["digest"]: d for d in descs}
    assert len(out) == len(descs), f"duplicate descriptors: {descs}"
    return out


@pytest.fixture
def subject(client: httpx.Client, repo: str) -> Image:
    return push_image(client, repo, "base")


def test_end12a_lists_referrers_with_artifact_type_and_annotations(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    sbom = push_artifact(client, repo, subject, SBOM, annotations={"org.example.kind": "sbom"})
    # No artifactType: the descriptor falls back to the config media type.
    sig = push_artifact(
        client, repo, subject, None, config_media_type=SIG_CONFIG, annotations={"k": "v"}
    )
    descs = by_digest(listed(referrers(client, repo, subject.digest)))
    assert set(descs) == {sbom.digest, sig.digest}
    assert descs[sbom.digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom.digest,
        "size": len(sbom.manifest),
        "artifactType": SBOM,
        "annotations": {"org.example.kind": "sbom"},
    }
    assert descs[sig.digest]["artifactType"] == SIG_CONFIG
    assert descs[sig.digest]["annotations"] == {"k": "v"}
    assert descs[sig.digest]["size"] == len(sig.manifest)


def test_end12a_descriptor_without_annotations(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    art = push_artifact(client, repo, subject, SBOM)
    (desc,) = listed(referrers(client, repo, subject.digest))
    assert desc["digest"] == art.digest
    assert not desc.get("annotations")


def test_end12a_no_referrers_is_200_empty(client: httpx.Client, repo: str, subject: Image) -> None:
    assert listed(referrers(client, repo, subject.digest)) == []


def test_end12a_unknown_digest_is_200_empty(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    assert listed(referrers(client, repo, absent_digest())) == []


def test_end12a_unknown_repo_is_200_empty(client: httpx.Client, repo: str) -> None:
    assert listed(referrers(client, repo, absent_digest())) == []


def test_end12a_referrer_pushed_before_subject(client: httpx.Client, repo: str) -> None:
    # Build the subject (its blobs are in the repository) but push its manifest only later.
    config, layer = encode_json({"os": "linux"}), random_bytes(100)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    body, digest = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    future = Image(repo, body, digest, OCI_MANIFEST, config, [layer])
    art = push_artifact(client, repo, future, SBOM)
    assert [d["digest"] for d in listed(referrers(client, repo, digest))] == [art.digest]
    assert push_manifest(client, repo, "late", body).status_code == 201
    assert [d["digest"] for d in listed(referrers(client, repo, digest))] == [art.digest]


def test_end12a_index_referrer(client: httpx.Client, repo: str, subject: Image) -> None:
    child = push_image(client, repo)
    body, digest = image_index(
        [child.descriptor()],
        subject=subject.descriptor(),
        artifact_type="application/vnd.example.bundle",
        annotations={"a": "b"},
    )
    assert push_manifest(client, repo, digest, body, OCI_INDEX).status_code == 201
    descs = by_digest(listed(referrers(client, repo, subject.digest)))
    assert descs[digest]["mediaType"] == OCI_INDEX
    assert descs[digest]["artifactType"] == "application/vnd.example.bundle"
    assert descs[digest]["annotations"] == {"a": "b"}
    assert descs[digest]["size"] == len(body)


def test_end12a_only_direct_referrers(client: httpx.Client, repo: str, subject: Image) -> None:
    sig = push_artifact(client, repo, subject, SBOM)
    sig_of_sig = push_artifact(client, repo, sig, "application/vnd.example.countersign")
    assert [d["digest"] for d in listed(referrers(client, repo, subject.digest))] == [sig.digest]
    assert [d["digest"] for d in listed(referrers(client, repo, sig.digest))] == [sig_of_sig.digest]


def test_end12a_deleted_referrer_disappears(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    keep = push_artifact(client, repo, subject, SBOM)
    gone = push_artifact(client, repo, subject, SBOM)
    assert client.delete(manifest_path(repo, gone.digest)).status_code == 202
    assert [d["digest"] for d in listed(referrers(client, repo, subject.digest))] == [keep.digest]


def test_end12a_referrers_are_per_repository(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    push_artifact(client, repo, subject, SBOM)
    other = repo + "-other"
    push_image(client, other, "v1")
    assert listed(referrers(client, other, subject.digest)) == []


def test_end12a_malformed_digest_is_400(client: httpx.Client, repo: str, subject: Image) -> None:
    assert_error(referrers(client, repo, "sha256:nothex"), 400, "DIGEST_INVALID")


def test_end12a_tag_is_not_a_digest(client: httpx.Client, repo: str, subject: Image) -> None:
    assert_error(referrers(client, repo, "base"), 400, "DIGEST_INVALID")


# --- end-12b: artifactType filter ----------------------------------------------------------


def test_end12b_filter_by_artifact_type(client: httpx.Client, repo: str, subject: Image) -> None:
    sbom = push_artifact(client, repo, subject, SBOM)
    push_artifact(client, repo, subject, "application/vnd.example.other")
    r = referrers(client, repo, subject.digest, SBOM)
    assert [d["digest"] for d in listed(r)] == [sbom.digest]
    assert r.headers["oci-filters-applied"] == "artifactType"


def test_end12b_filter_matches_config_media_type_fallback(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    sig = push_artifact(client, repo, subject, None, config_media_type=SIG_CONFIG)
    push_artifact(client, repo, subject, SBOM)
    r = referrers(client, repo, subject.digest, SIG_CONFIG)
    assert [d["digest"] for d in listed(r)] == [sig.digest]


def test_end12b_filter_without_match_is_empty(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    push_artifact(client, repo, subject, SBOM)
    r = referrers(client, repo, subject.digest, "application/vnd.example.none")
    assert listed(r) == []
    assert r.headers["oci-filters-applied"] == "artifactType"


def test_end12a_no_filter_header_without_filter(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    push_artifact(client, repo, subject, SBOM)
    r = referrers(client, repo, subject.digest)
    assert "oci-filters-applied" not in r.headers


# --- the sha256-<hex> tag schema -----------------------------------------------------------


def tag_schema_index(client: httpx.Client, repo: str, subject: Image, descs: list[Any]) -> None:
    """Store an index under the referrers tag schema, as clients without the API do."""
    body, _ = image_index(descs)
    tag = subject.digest.replace(":", "-")
    assert push_manifest(client, repo, tag, body, OCI_INDEX).status_code == 201


def test_end12a_includes_tag_schema_index(client: httpx.Client, repo: str, subject: Image) -> None:
    # An artifact that names no subject itself, known only from the fallback tag's index.
    legacy = push_artifact(client, repo, None, OLD, annotations={"old": "yes"})
    tag_schema_index(
        client,
        repo,
        subject,
        [legacy.descriptor(artifactType=OLD, annotations={"old": "yes"})],
    )
    modern = push_artifact(client, repo, subject, SBOM)
    descs = by_digest(listed(referrers(client, repo, subject.digest)))
    assert set(descs) == {legacy.digest, modern.digest}
    assert descs[legacy.digest]["artifactType"] == OLD
    filtered = listed(referrers(client, repo, subject.digest, OLD))
    assert [d["digest"] for d in filtered] == [legacy.digest]


def test_end12a_tag_schema_and_subject_listed_once(
    client: httpx.Client, repo: str, subject: Image
) -> None:
    art = push_artifact(client, repo, subject, SBOM)
    tag_schema_index(client, repo, subject, [art.descriptor(artifactType=SBOM)])
    descs = listed(referrers(client, repo, subject.digest))
    assert [d["digest"] for d in descs] == [art.digest]
