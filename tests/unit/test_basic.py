"""The one decoder of HTTP Basic credentials (auth/basic.py), which the logins and the
token exchange share."""

from __future__ import annotations

import base64

import pytest

from ocireg.auth.basic import basic_pair


def _encoded(text: bytes) -> str:
    return base64.b64encode(text).decode()


@pytest.mark.parametrize(
    ("raw", "pair"),
    [
        (b"alice:s3cret", ("alice", "s3cret")),
        (b"alice:pa:ss", ("alice", "pa:ss")),  # the first colon separates (RFC 7617)
        (b":", ("", "")),  # what containers/image sends without credentials
        (b":eyJ.token", ("", "eyJ.token")),  # an ID token as the password, no user
        (b"j\xc3\xb6rg:x", ("jörg", "x")),
    ],
)
def test_pairs(raw: bytes, pair: tuple[str, str]) -> None:
    assert basic_pair(_encoded(raw)) == pair
    assert basic_pair(f"  {_encoded(raw)} ") == pair


@pytest.mark.parametrize(
    "credentials",
    [
        _encoded(b"no colon"),
        _encoded(b"\xff\xfe:latin"),  # not UTF-8
        "not base64!",
        "YWxpY2U6cw",  # unpadded
        "YWxp Y2U6cw==",  # a space inside
        "\u00e9",  # not ASCII at all
        "",
    ],
)
def test_refused(credentials: str) -> None:
    assert basic_pair(credentials) is None
