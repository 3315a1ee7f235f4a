"""`Range` headers of blob GETs in-process: what is served, and 416 RANGE_INVALID with
`Content-Range: bytes */<size>` for what cannot be."""

from __future__ import annotations

import json

import pytest

from ocireg.api.responses import blob_headers, parse_range
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-9", 10, (0, 9)),
        ("bytes=2-", 10, (2, 9)),
        ("bytes=2-100", 10, (2, 9)),  # an end past the blob is clipped
        ("bytes=-3", 10, (7, 9)),  # suffix: the last 3 bytes
        ("bytes=-100", 10, (0, 9)),  # a suffix longer than the blob is all of it
        (" bytes=9-9 ", 10, (9, 9)),
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size", "reason"),
    [
        ("bytes=", 10, "malformed Range"),
        ("bytes=-", 10, "malformed Range"),
        ("bytes=0-1,3-4", 10, "malformed Range"),
        ("items=0-1", 10, "malformed Range"),
        ("bytes=a-b", 10, "malformed Range"),
        ("bytes=5-2", 10, "range end before start"),
        ("bytes=-0", 10, "empty suffix range"),
        ("bytes=10-", 10, "range starts beyond the blob"),
        ("bytes=0-", 0, "range starts beyond the blob"),
    ],
)
def test_unsatisfiable_range_is_416_range_invalid(header: str, size: int, reason: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_range(header, size)
    err = info.value
    assert (err.status, err.code) == (416, ErrorCode.RANGE_INVALID)
    assert err.headers == {"Content-Range": f"bytes */{size}"}
    assert json.loads(err.body())["errors"][0]["detail"] == {"reason": reason}


def test_partial_blob_headers_carry_content_range_and_length() -> None:
    digest = Digest.of(b"0123456789")
    headers = dict(blob_headers(digest, 10, (2, 5)))
    assert headers[b"content-range"] == b"bytes 2-5/10"
    assert headers[b"content-length"] == b"4"
    assert headers[b"docker-content-digest"] == str(digest).encode()
    assert b"content-range" not in dict(blob_headers(digest, 10))
