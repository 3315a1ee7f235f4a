"""Repository globs (`ocireg.auth.glob`) with zot's (doublestar) meaning."""

from __future__ import annotations

import pytest

from ocireg.globs import GlobError, compile_glob, glob_match


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("**", "a/b/c", True),
        ("team/*", "team/app", True),
        ("team/*", "team/app/sub", False),
        ("team/**", "team", True),
        ("team/**", "team/app/sub", True),
        ("**/app", "app", True),
        ("**/app", "x/y/app", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("{dev,prod}/*", "prod/api", True),
        ("{dev,prod}/*", "test/api", False),
        ("img-[0-9]", "img-7", True),
        ("img-[!0-9]", "img-7", False),
        ("img-?", "img-x", True),
        ("img-?", "img-/", False),
        ("a*", "ab/c", False),
        ("a*", "a", True),
        ("*", "", True),
        ("team/app", "team/app", True),
        ("team/app", "team/apps", False),  # anchored at both ends
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("a+", "aa", False),
        ("{a,b/**}", "b/c/d", True),
        ("{a,b/**}", "c", False),
        ("[a-c]*/x", "b1/x", True),
        ("**/**", "a/b", True),
    ],
)
def test_globs_mean_what_zot_means(pattern: str, name: str, matches: bool) -> None:
    assert glob_match(pattern, name) is matches


@pytest.mark.parametrize("pattern", ["a[", "{a,b", "a}", "[z-a]", "x\\"])
def test_malformed_globs_are_errors(pattern: str) -> None:
    with pytest.raises(GlobError):
        compile_glob(pattern)
    assert glob_match(pattern, "anything") is False  # a bad glob never matches
