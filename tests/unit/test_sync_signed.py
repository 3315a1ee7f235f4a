"""zot's tests of signatures and of cosign and fallback tags (`onlySigned`), as sync applies
them; the copies themselves are tested with real registries in tests/sync/test_only_signed.py."""

from __future__ import annotations

import pytest

from ocireg.sync.settings import RegistrySettings
from ocireg.sync.signed import is_cosign_tag, is_signature, legacy_subject, needs_signature

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("descriptor", "signature"),
    [
        ({"artifactType": "application/vnd.cncf.notary.signature"}, True),
        ({"artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}, True),
        ({"artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}, True),
        ({"artifactType": "application/vnd.example.sbom"}, False),
        # cosign pushed by tag, listed by a registry that keeps the tag as the ref name
        ({"annotations": {"org.opencontainers.image.ref.name": f"sha256-{HEX}.sig"}}, True),
        ({"annotations": {"org.opencontainers.image.ref.name": "v1"}}, False),
        ({}, False),
        # an upstream's JSON of other types: no signature (an unhashable one raised)
        ({"artifactType": ["application/vnd.cncf.notary.signature"]}, False),
        ({"artifactType": {"a": 1}}, False),
        ({"annotations": ["org.opencontainers.image.ref.name"]}, False),
    ],
)
def test_a_signature_is_told_by_artifact_type_or_cosign_ref_name(
    descriptor: dict[str, object], signature: bool
) -> None:
    assert is_signature(descriptor) is signature


def test_signatures_and_fallback_tags_are_not_asked_to_be_signed() -> None:
    only = RegistrySettings(urls=("http://h",), only_signed=True)
    assert needs_signature(only, "v1")
    assert needs_signature(only, f"sha256:{HEX}")  # a digest is an image like any other
    assert needs_signature(only, f"sha256-{HEX}.att")  # zot: an attestation must be signed
    assert not needs_signature(only, f"sha256-{HEX}.sig")
    assert not needs_signature(only, f"sha256-{HEX}")
    assert not needs_signature(only, "release-sha256-x.sig")  # zot's test is that loose
    assert not needs_signature(RegistrySettings(urls=("http://h",)), "v1")


def test_cosign_tags_and_their_subject() -> None:
    assert is_cosign_tag(f"sha256-{HEX}.sig") and is_cosign_tag(f"sha256-{HEX}.sbom")
    assert not is_cosign_tag(f"sha256-{HEX}.att")  # zot syncs that as an image
    assert str(legacy_subject(f"sha256-{HEX}.sig")) == f"sha256:{HEX}"
    assert legacy_subject("sha256-abc.sig") is None
