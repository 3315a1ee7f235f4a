"""Which member owns a repository.

- `modulo` (default, zot's rule, so a zot cluster's repositories keep their owners):
  owner = members[SipHash-2-4(key=hashKey, msg=name) % len(members)], the 64-bit result read
  as an unsigned little-endian integer. Adding a fourth member to three moves about three
  repositories in four.
- `rendezvous` (highest random weight, ocireg's opt-in): every member gets a weight
  SipHash-2-4(key=hashKey, msg=member + "\\n" + name); the highest weight owns (on a tie, the
  member listed first). Adding a member to n moves about 1/(n+1) of the repositories, all to
  the new member; removing one moves only the repositories it owned.

The key is a shared secret: without it an outsider cannot choose names that all land on one
member.
"""

from __future__ import annotations

from collections.abc import Sequence

from siphash24 import siphash24

ROUTING_MODES = ("modulo", "rendezvous")


def _sum64(message: bytes, hash_key: bytes) -> int:
    # siphash24's intdigest() does not read the digest little-endian; zot's Sum64 does.
    digest: bytes = siphash24(message, key=hash_key).digest()
    return int.from_bytes(digest, "little")


def owner_index(repository: str, hash_key: bytes, member_count: int) -> int:
    """Index into the member list of the member that owns `repository` (modulo routing)."""
    return _sum64(repository.encode(), hash_key) % member_count


def rendezvous_owner(repository: str, hash_key: bytes, members: Sequence[str]) -> int:
    """Index of the member with the highest weight for `repository`."""
    name = repository.encode()
    weights = [_sum64(member.encode() + b"\n" + name, hash_key) for member in members]
    return max(range(len(members)), key=lambda i: (weights[i], -i))


def owner_of(repository: str, hash_key: bytes, members: Sequence[str], routing: str) -> int:
    if routing == "rendezvous":
        return rendezvous_owner(repository, hash_key, members)
    return owner_index(repository, hash_key, len(members))
