"""Names, tags and digests: the spec's grammars, checked on decoded text."""

from __future__ import annotations

import pytest

from ocireg import names
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b_c__d-e--f/g0", "x/y/z/w"])
def test_valid_names(name: str) -> None:
    assert names.validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "a/", "/a", "a//b", "..", "a/../b", "a/.b", "-a", "a_", "a%2Fb", "a" * 256, "a\n"],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        names.validate_name(name)
    assert info.value.code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize(
    "name", ["x/blobs", "x/blobs/sha256/ab", "blobs", "x/index.json", "x/oci-layout", "a/blobs/b"]
)
def test_names_with_layout_components_are_invalid(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        names.validate_name(name)
    assert info.value.code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize("name", ["x/blobsy", "x/manifests", "x/tags/list", "x/index", "uploads"])
def test_names_near_layout_components_are_valid(name: str) -> None:
    assert names.validate_name(name) == name


def test_digest_roundtrip_and_algorithms() -> None:
    d = Digest.of(b"hello")
    assert Digest.parse(str(d)) == d
    assert Digest.of(b"hello", "sha512").algorithm == "sha512"


@pytest.mark.parametrize(
    "text",
    [
        "sha256:xyz",
        "sha256:" + "A" * 64,
        "md5:" + "0" * 32,
        "sha256",
        "sha512:" + "0" * 64,
        "sha256:" + "0" * 64 + "\n",
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(RegistryError) as info:
        Digest.parse(text)
    assert info.value.code is ErrorCode.DIGEST_INVALID


@pytest.mark.parametrize("tag", ["v1\n", "\n", "v1\nv2", "a" * 129])
def test_invalid_tags(tag: str) -> None:
    assert not names.is_tag(tag)
