"""Repository name and tag grammars of the distribution spec, and the names the layout reserves.

Granian hands us the percent-decoded path, so these checks run on decoded text: a name that
passes cannot contain `..`, a leading `/`, or anything that escapes the storage root.
"""

from __future__ import annotations

import re

from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError

# Matched whole (`fullmatch`): a `$` would also match before a final newline, and a tag
# or name ending in "\n" (`%0A` in the path) would be stored as such.
_NAME_RE = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME_LENGTH = 255

# Names of a repository's layout entries (`registry/layout.py`). A repository with one of
# them as a component would live inside another repository's layout (`x/blobs/sha256/<hex>`
# inside `x`'s blob store), whether or not that other repository exists yet. (`.uploads`
# cannot match the grammar.)
RESERVED_COMPONENTS = frozenset({"blobs", "index.json", "oci-layout"})


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise RegistryError(ErrorCode.NAME_INVALID, detail={"name": name[:300]})
    if not RESERVED_COMPONENTS.isdisjoint(name.split("/")):
        raise RegistryError(
            ErrorCode.NAME_INVALID,
            "a name component is reserved by the storage layout",
            {"name": name[:300], "reserved": sorted(RESERVED_COMPONENTS)},
        )
    return name


def is_tag(reference: str) -> bool:
    """A tag a manifest may be stored under: the spec's grammar."""
    return bool(_TAG_RE.fullmatch(reference))


def reads_as_tag(reference: str) -> bool:
    """A reference that reads and deletes look up as a tag: anything but a digest. zot stores
    tags outside the grammar (`1.0+build`, `.hidden`, `a:b`), and lists and serves them; so
    do we, for a layout it wrote. Only writes hold a tag to the grammar (`is_tag`)."""
    return not Digest.is_valid(reference)
