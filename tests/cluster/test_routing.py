"""Owner selection: zot's vectors, and an even spread (pure function, no server needed)."""

from __future__ import annotations

from collections import Counter

import pytest

from ocireg.cluster.routing import owner_index

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
