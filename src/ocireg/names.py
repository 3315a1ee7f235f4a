"""Repository name and tag grammars of the distribution spec, and `/v2/` path splitting.

Granian hands us the percent-decoded path, so these checks run on decoded text: a name that
passes cannot contain `..`, a leading `/`, or anything that escapes the storage root.
"""

from __future__ import annotations

import re

from ocireg.errors import ErrorCode, RegistryError

_NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255

# The last path segment(s) after the repository name, in order of precedence.
_ROUTE_SUFFIXES = ("/blobs/uploads/", "/blobs/", "/manifests/", "/tags/list", "/referrers/")


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.match(name):
        raise RegistryError(ErrorCode.NAME_INVALID, detail={"name": name[:300]})
    return name


def is_tag(reference: str) -> bool:
    return bool(_TAG_RE.match(reference))


def repository_of(path: str) -> str | None:
    """The repository a `/v2/<name>/...` path addresses, or None (e.g. `/v2/`, `_catalog`).

    The cluster router uses this before any handler runs, so it must agree with the routes:
    the name is everything between `/v2/` and the *last* route keyword.
    """
    if not path.startswith("/v2/"):
        return None
    rest = path[3:]
    best = -1
    for suffix in _ROUTE_SUFFIXES:
        i = rest.rfind(suffix)
        if i > best:
            best = i
    if best <= 0:
        return None
    return rest[1:best]
