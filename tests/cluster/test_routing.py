"""Owner selection: zot's vectors, and an even spread (pure function, no server needed)."""

from __future__ import annotations

from collections import Counter

import pytest

from ocireg.cluster.routing import owner_index, owner_of, rendezvous_owner

KEY = b"loremipsumdolors"


@pytest.mark.parametrize(
    ("repo", "members", "owner"),
    [
        ("zot-test", 2, 1),
        ("zot-test", 3, 1),
        ("debian", 3, 0),
        ("alpine", 3, 1),
        ("ubuntu", 3, 0),
        # further vectors computed independently from the SipHash-2-4 reference
        ("busybox", 3, 0),
        ("a", 3, 1),
        ("library/ubuntu", 3, 2),
        ("test", 3, 0),
    ],
)
def test_owner_vectors_match_zot(repo: str, members: int, owner: int) -> None:
    assert owner_index(repo, KEY, members) == owner


def test_one_member_owns_everything() -> None:
    assert {owner_index(f"r{i}", KEY, 1) for i in range(100)} == {0}


def test_ten_thousand_names_spread_evenly_over_three_members() -> None:
    counts = Counter(owner_index(f"team-{i}/image-{i * 7}", KEY, 3) for i in range(10_000))
    expected = 10_000 / 3
    assert set(counts) == {0, 1, 2}
    for member, count in counts.items():
        assert abs(count - expected) <= 0.05 * expected, (member, counts)


def test_the_key_changes_the_owner() -> None:
    names = [f"repo{i}" for i in range(200)]
    other = b"0123456789abcdef"
    assert [owner_index(n, KEY, 3) for n in names] != [owner_index(n, other, 3) for n in names]


# --- rendezvous (highest random weight), and how many repositories move -------------------

M3 = ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000"]
M4 = [*M3, "10.0.0.4:9000"]


def _siphash24(key: bytes, message: bytes) -> int:
    """SipHash-2-4 written out from its paper, to check the C library's weights."""
    mask = (1 << 64) - 1

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & mask

    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261]
    v.append(k1 ^ 0x7465646279746573)

    def rounds(n: int) -> None:
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask
            v[1] = rotl(v[1], 13) ^ v[0]
            v[0] = rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & mask
            v[3] = rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & mask
            v[3] = rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & mask
            v[1] = rotl(v[1], 17) ^ v[2]
            v[2] = rotl(v[2], 32)

    tail = len(message) % 8
    blocks = [*range(0, len(message) - tail, 8)]
    for offset in blocks:
        m = int.from_bytes(message[offset : offset + 8], "little")
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    last = (len(message) & 0xFF) << 56 | int.from_bytes(message[len(message) - tail :], "little")
    v[3] ^= last
    rounds(2)
    v[0] ^= last
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


@pytest.mark.parametrize(
    ("repo", "owner3", "owner4"),
    [
        ("zot-test", 0, 0),
        ("debian", 2, 2),
        ("alpine", 0, 0),
        ("ubuntu", 2, 3),
        ("busybox", 1, 1),
        ("a", 1, 1),
        ("library/ubuntu", 2, 3),
        ("test", 1, 3),
    ],
)
def test_rendezvous_vectors(repo: str, owner3: int, owner4: int) -> None:
    assert rendezvous_owner(repo, KEY, M3) == owner3
    assert rendezvous_owner(repo, KEY, M4) == owner4
    for members, owner in ((M3, owner3), (M4, owner4)):
        weights = [_siphash24(KEY, f"{m}\n{repo}".encode()) for m in members]
        assert weights.index(max(weights)) == owner


def test_the_reference_siphash_agrees_with_the_modulo_vectors() -> None:
    assert _siphash24(KEY, b"zot-test") % 3 == owner_index("zot-test", KEY, 3) == 1
    assert _siphash24(KEY, b"library/ubuntu") % 3 == 2


def _moved(before: list[str], after: list[str], routing: str) -> float:
    names = [f"team-{i}/image-{i * 7}" for i in range(10_000)]
    old = [before[owner_of(n, KEY, before, routing)] for n in names]
    new = [after[owner_of(n, KEY, after, routing)] for n in names]
    return sum(a != b for a, b in zip(old, new, strict=True)) / len(names)


def test_share_of_repositories_that_move_when_a_member_joins_or_leaves() -> None:
    grow, shrink = _moved(M3, M4, "modulo"), _moved(M4, M3, "modulo")
    print(f"modulo: 3->4 moves {grow:.1%}, 4->3 moves {shrink:.1%}")
    assert 0.70 < grow < 0.80 and 0.70 < shrink < 0.80
    grow, shrink = _moved(M3, M4, "rendezvous"), _moved(M4, M3, "rendezvous")
    print(f"rendezvous: 3->4 moves {grow:.1%}, 4->3 moves {shrink:.1%}")
    assert grow <= 0.27 and shrink <= 0.27
    # ...and only to the new member, or only from the one that left
    names = [f"r{i}" for i in range(2_000)]
    for name in names:
        old, new = rendezvous_owner(name, KEY, M3), rendezvous_owner(name, KEY, M4)
        assert new in (old, 3)
