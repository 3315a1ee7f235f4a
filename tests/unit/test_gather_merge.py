"""Pages merged from several members' pages (cluster/gather.py): walked with `after`, they
list every name once, in order, whatever the page size and however the names are spread."""

from __future__ import annotations

import random

import pytest

from ocireg.cluster.gather import merge_pages


def _page(names: list[str], after: str, n: int) -> tuple[list[str], bool]:
    """One member's answer: up to `n` names after `after`, and whether more follow."""
    rest = [name for name in names if name > after]
    return rest[:n], len(rest) > n


def _walk(members: list[list[str]], n: int) -> list[str]:
    seen: list[str] = []
    after = ""
    for _ in range(1000):
        page, more = merge_pages([_page(m, after, n) for m in members], n, key=lambda s: s)
        assert len(page) <= n
        assert page == sorted(set(page))
        seen += page
        if not more:
            return seen
        assert page, "a page that says more follow is never empty"
        after = page[-1]
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("seed", range(5))
def test_a_walk_lists_every_name_once_in_order(n: int, seed: int) -> None:
    rng = random.Random(seed)
    names = sorted({f"r{rng.randrange(10_000):05d}" for _ in range(60)})
    members: list[list[str]] = [[], [], []]
    for name in names:
        members[rng.randrange(3)].append(name)
    # a name both sides hold (a shared metadata store): still listed once
    members[1] = sorted({*members[1], *members[0][:3]})
    assert _walk(members, n) == names


def test_one_member_ahead_does_not_skip_the_others() -> None:
    # member 0's first page reaches "d"; member 1 still holds "b" and "c" beyond its page
    page, more = merge_pages([(["a", "d"], True), (["a2"], True)], 5, key=lambda s: s)
    assert page == ["a", "a2"]
    assert more


def test_empty_parts() -> None:
    assert merge_pages([([], False), ([], False)], 10, key=lambda s: s) == ([], False)
