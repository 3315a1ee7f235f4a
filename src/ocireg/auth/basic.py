"""HTTP Basic credentials (RFC 7617): the one decoder of `Authorization: Basic ...`, for the
middleware's logins and the token exchange's ID token given as a password."""

from __future__ import annotations

import base64


def basic_pair(credentials: str) -> tuple[str, str] | None:
    """(user, password) of a Basic credential (the text after the scheme); None when it is
    not base64 of UTF-8 text with a colon. Either part may be empty: callers decide."""
    try:
        text = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII at all, or not UTF-8
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None
