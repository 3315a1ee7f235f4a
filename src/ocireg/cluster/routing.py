"""Which member owns a repository: zot's rule, so a zot cluster's repositories keep their owners.

owner = members[SipHash-2-4(key=hashKey, msg=name) % len(members)], the 64-bit result read as an
unsigned little-endian integer. The key is a shared secret: without it an outsider cannot choose
names that all land on one member.
"""

from __future__ import annotations

from siphash24 import siphash24


def owner_index(repository: str, hash_key: bytes, member_count: int) -> int:
    """Index into the member list of the member that owns `repository`."""
    # siphash24's intdigest() does not read the digest little-endian; zot's Sum64 does.
    digest: bytes = siphash24(repository.encode(), key=hash_key).digest()
    return int.from_bytes(digest, "little") % member_count
