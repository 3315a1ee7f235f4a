"""ocireg.registry.lately: what a process found stored lately, trusted for a while."""

from __future__ import annotations

from ocireg.registry.lately import Lately


def test_a_noted_key_is_trusted_until_forgotten() -> None:
    lately: Lately[str] = Lately()
    assert "a" not in lately
    lately.note("a")
    assert "a" in lately
    lately.forget("a")
    assert "a" not in lately


def test_a_key_noted_longer_ago_than_its_seconds_is_not_trusted() -> None:
    lately: Lately[str] = Lately(seconds=0.0)
    lately.note("a")
    assert "a" not in lately


def test_the_oldest_noted_goes_first_past_the_most() -> None:
    lately: Lately[str] = Lately(most=2)
    for key in ("a", "b", "a", "c"):  # "a" noted again: "b" is now the oldest
        lately.note(key)
    assert ("a" in lately, "b" in lately, "c" in lately) == (True, False, True)
