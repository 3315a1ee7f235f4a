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
    "name", ["", "A", "a/", "/a", "a//b", "..", "a/../b", "a/.b", "-a", "a_", "a%2Fb", "a" * 256]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        names.validate_name(name)
    assert info.value.code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize(
    ("path", "repo"),
    [
        ("/v2/a/b/manifests/latest", "a/b"),
        ("/v2/a/manifests/b/manifests/latest", "a/manifests/b"),
        ("/v2/a/blobs/uploads/", "a"),
        ("/v2/a/blobs/uploads/123", "a"),
        ("/v2/x/tags/list", "x"),
        ("/v2/x/referrers/sha256:00", "x"),
        ("/v2/", None),
        ("/v2/_catalog", None),
        ("/livez", None),
    ],
)
def test_repository_of_path(path: str, repo: str | None) -> None:
    assert names.repository_of(path) == repo


def test_digest_roundtrip_and_algorithms() -> None:
    d = Digest.of(b"hello")
    assert Digest.parse(str(d)) == d
    assert Digest.of(b"hello", "sha512").algorithm == "sha512"


@pytest.mark.parametrize(
    "text", ["sha256:xyz", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256", "sha512:" + "0" * 64]
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(RegistryError) as info:
        Digest.parse(text)
    assert info.value.code is ErrorCode.DIGEST_INVALID
