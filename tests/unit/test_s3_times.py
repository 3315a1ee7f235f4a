"""S3 timestamps are parsed without dateutil (`storage/s3/client.py`, `parse_time`), to the
same instants botocore's own parser gives."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from ocireg.storage.s3.client import parse_time


@pytest.mark.parametrize(
    "text",
    [
        "Mon, 07 Dec 2026 03:40:00 GMT",  # Last-Modified, as S3 sends it in headers
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "2026-12-07T03:40:00.000Z",  # LastModified in listings
        "2026-12-07T03:40:00Z",
        "2026-12-07T03:40:00.123456+00:00",
        "2026-12-07T05:40:00+02:00",
        "1765000000",  # epoch seconds: not from S3, left to botocore
    ],
)
def test_same_instant_as_botocore(text: str) -> None:
    parsed = parse_time(text)
    assert parsed == parse_timestamp(text)
    assert parsed.utcoffset() is not None


def test_a_time_without_zone_is_utc() -> None:
    assert parse_time("2026-12-07T03:40:00").timestamp() == 1796614800.0


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_time("not a time")
