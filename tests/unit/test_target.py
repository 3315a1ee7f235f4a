"""The one reading of a request (`ocireg.target.classify`): endpoint, repository, reference,
action, query and mount source, or the error the request is answered with."""

from __future__ import annotations

import pytest

from ocireg.digest import Digest
from ocireg.errors import ErrorCode
from ocireg.target import Action, Endpoint, Kind, Target, classify

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def ok(method: str, path: str, query: bytes = b"") -> Target:
    target = classify(method, path, query)
    assert target.error is None, target.error
    return target


@pytest.mark.parametrize(
    ("method", "path", "endpoint", "repo"),
    [
        ("GET", "/v2/", Endpoint.PING, None),
        ("GET", "/v2", Endpoint.PING, None),
        ("GET", "/v2/_catalog", Endpoint.CATALOG, None),
        ("GET", "/v2/a/b/manifests/latest", Endpoint.MANIFEST, "a/b"),
        ("GET", "/v2/a/manifests/b/manifests/latest", Endpoint.MANIFEST, "a/manifests/b"),
        ("POST", "/v2/a/blobs/uploads/", Endpoint.UPLOAD_START, "a"),
        ("POST", "/v2/a/blobs/uploads", Endpoint.UPLOAD_START, "a"),
        ("PATCH", "/v2/a/blobs/uploads/123", Endpoint.UPLOAD, "a"),
        ("HEAD", f"/v2/a/blobs/{D1}", Endpoint.BLOB, "a"),
        ("GET", "/v2/x/tags/list", Endpoint.TAGS, "x"),
        ("GET", "/v2/x/tags/list/tags/list", Endpoint.TAGS, "x/tags/list"),
        ("GET", f"/v2/x/referrers/{D1}", Endpoint.REFERRERS, "x"),
        ("GET", "/livez", Endpoint.LIVEZ, None),
        ("POST", "/v2/_zot/ext/search", Endpoint.GRAPHQL, None),
        ("GET", "/v2/_oci/ext/discover", Endpoint.DISCOVER, None),
        ("GET", "/v2/_zot/ext/mgmt", Endpoint.MGMT, None),
        ("PUT", "/v2/_zot/ext/userprefs", Endpoint.USERPREFS, None),
        ("GET", "/metrics", Endpoint.OTHER, None),
        ("GET", "/v2/x", Endpoint.UNKNOWN_V2, None),
        ("GET", "/v2/x/blobs", Endpoint.UNKNOWN_V2, None),
    ],
)
def test_endpoint_and_repository(
    method: str, path: str, endpoint: Endpoint, repo: str | None
) -> None:
    target = ok(method, path)
    assert (target.endpoint, target.repository) == (endpoint, repo)


def test_kinds_and_actions() -> None:
    assert ok("GET", "/livez").kind is Kind.HEALTH
    assert ok("GET", "/v2/x").kind is Kind.PING
    assert ok("HEAD", "/v2/a/manifests/v1").action is Action.READ
    assert ok("DELETE", "/v2/a/manifests/v1").action is Action.DELETE
    put = ok("PUT", "/v2/a/manifests/v1")
    assert (put.action, put.tag, put.reference) == (Action.CREATE, "v1", "v1")
    by_digest = ok("PUT", f"/v2/a/manifests/{D1}")
    assert (by_digest.tag, by_digest.reference) == (None, D1)


def test_userprefs_names_the_repository_of_its_query() -> None:
    """So that with separate storage the cluster layer sends it to the member holding that
    repository; an invalid name names none (the handler answers 404), a repeat is refused."""
    target = classify("PUT", "/v2/_zot/ext/userprefs", b"action=toggleStar&repo=a%2Fb")
    assert (target.endpoint, target.kind, target.repository) == (
        Endpoint.USERPREFS,
        Kind.CATALOG,
        "a/b",
    )
    assert target.query == {"action": "toggleStar", "repo": "a/b"}
    assert classify("PUT", "/v2/_zot/ext/userprefs", b"repo=A/../b").repository is None
    for repeated in (b"repo=a&repo=b", b"action=toggleStar&action=toggleBookmark&repo=a"):
        error = classify("PUT", "/v2/_zot/ext/userprefs", repeated).error
        assert error is not None and error.code is ErrorCode.QUERY_INVALID


def test_blob_digest_parsed_once() -> None:
    assert ok("GET", f"/v2/a/blobs/{D1}").digest == Digest.parse(D1)
    target = classify("GET", "/v2/a/blobs/sha256:nothex")
    assert target.endpoint is Endpoint.BLOB  # the metrics label survives the error
    assert target.error is not None and target.error.code is ErrorCode.DIGEST_INVALID


@pytest.mark.parametrize(
    "path",
    [
        "/v2/x/blobs/sha256/" + "a" * 64 + "/manifests/v1",  # inside x's blob store
        "/v2/x/index.json/tags/list",
        "/v2/x/oci-layout/manifests/v1",
        "/v2/x/blobs/blobs/uploads/",
        "/v2/Upper/tags/list",
    ],
)
def test_names_that_collide_with_a_layout_are_refused(path: str) -> None:
    target = classify("GET", path)
    assert target.error is not None and target.error.code is ErrorCode.NAME_INVALID
    assert target.repository is None


def test_mount_source_is_the_one_value() -> None:
    target = ok("POST", "/v2/alice/blobs/uploads/", f"mount={D1}&from=alice/src".encode())
    assert (target.mount, target.mount_from) == (Digest.parse(D1), "alice/src")


@pytest.mark.parametrize(
    "query",
    [
        f"mount={D1}&from=alice&from=secret",
        f"mount={D1}&mount={D2}&from=a",
        f"mount={D1}&from=alice&%66rom=secret",  # an encoded key is the same key
        f"digest={D1}&digest={D2}",
        "n=1&n=2",
        "last=a&last=b",
        "artifactType=a&artifactType=b",
    ],
)
def test_repeated_meaningful_keys_are_refused(query: str) -> None:
    target = classify("POST", "/v2/alice/blobs/uploads/", query.encode())
    assert target.error is not None and target.error.code is ErrorCode.QUERY_INVALID
    assert target.error.status == 400
    assert target.mount_from is None


def test_repeated_meaningless_keys_are_kept_first() -> None:
    assert ok("GET", "/v2/_catalog", b"x=1&x=2&n=3").query == {"x": "1", "n": "3"}


def test_encoded_values_are_decoded_once() -> None:
    target = ok("POST", "/v2/a/blobs/uploads/", f"mount={D1}&from=a%2Fb".encode())
    assert target.mount_from == "a/b"
    target = classify("POST", "/v2/a/blobs/uploads/", f"mount={D1}&from=a%252Fb".encode())
    assert target.error is not None and target.error.code is ErrorCode.NAME_INVALID


def test_mount_with_a_bad_source_or_digest_is_an_error() -> None:
    bad_source = classify("POST", "/v2/a/blobs/uploads/", f"mount={D1}&from=x/blobs".encode())
    assert bad_source.error is not None and bad_source.error.code is ErrorCode.NAME_INVALID
    bad_digest = classify("POST", "/v2/a/blobs/uploads/", b"mount=sha256:zz&from=b")
    assert bad_digest.error is not None and bad_digest.error.code is ErrorCode.DIGEST_INVALID
