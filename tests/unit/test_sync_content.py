"""Sync content rules: zot's glob, destination/stripPrefix mapping and tag filters."""

from __future__ import annotations

import re

import pytest

from ocireg.sync.content import Mapping, filter_tags, glob_match, is_semver, split_pattern
from ocireg.sync.settings import ContentRule, TagFilter


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("library/**", "library/alpine", True),
        ("library/**", "library/a/b/c", True),
        ("library/**", "library", True),
        ("library/**", "libraryx/alpine", False),
        ("repo2/repo*", "repo2/repo-x", True),
        ("repo2/repo*", "repo2/repo/x", False),
        ("a/*/c", "a/b/c", True),
        ("a/*/c", "a/b/b/c", False),
        ("a/**/c", "a/c", True),
        ("a/**/c", "a/x/y/c", True),
        ("**", "anything/at/all", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("img-[0-9]", "img-7", True),
        ("img-[!0-9]", "img-7", False),
        ("{alpine,busybox}", "busybox", True),
        ("{alpine,busybox}", "debian", False),
        ("exact/name", "exact/name", True),
        ("exact/name", "exact/name2", False),
        ("a.b", "axb", False),
    ],
)
def test_glob_is_doublestar(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


def test_split_pattern_at_the_last_slash_before_a_meta_character() -> None:
    assert split_pattern("library/**/") == ("library", "**/")
    assert split_pattern("repo1/repo/") == ("repo1/repo", "")
    assert split_pattern("a/b*/c") == ("a", "b*/c")
    assert split_pattern("**") == (".", "**")


def test_no_rules_mirrors_every_repository_under_its_own_name() -> None:
    mapping = Mapping(())
    assert mapping.local_name("x/y") == "x/y"
    assert mapping.remote_name("x/y") == "x/y"


def test_destination_without_strip_prefix_keeps_the_upstream_path() -> None:
    mapping = Mapping((ContentRule("library/**", destination="/docker"),))
    assert mapping.local_name("library/alpine") == "docker/library/alpine"
    assert mapping.remote_name("docker/library/alpine") == "library/alpine"
    assert mapping.remote_name("library/alpine") is None
    assert mapping.local_name("other/alpine") is None


def test_strip_prefix_removes_the_literal_part_of_the_prefix() -> None:
    mapping = Mapping((ContentRule("/repo1/**", destination="/localrepo", strip_prefix=True),))
    assert mapping.local_name("repo1/repo") == "localrepo/repo"
    assert mapping.local_name("repo1/a/b") == "localrepo/a/b"
    assert mapping.remote_name("localrepo/repo") == "repo1/repo"
    assert mapping.remote_name("elsewhere/repo") is None


def test_strip_prefix_of_an_exact_name_maps_it_onto_the_destination() -> None:
    mapping = Mapping((ContentRule("/repo1/repo", destination="/localrepo", strip_prefix=True),))
    assert mapping.local_name("repo1/repo") == "localrepo"
    assert mapping.remote_name("localrepo") == "repo1/repo"


def test_first_matching_rule_wins() -> None:
    mapping = Mapping(
        (
            ContentRule("a/**", destination="first"),
            ContentRule("**", destination="second"),
        )
    )
    assert mapping.local_name("a/x") == "first/a/x"
    assert mapping.local_name("b/x") == "second/b/x"
    assert mapping.remote_name("second/b/x") == "b/x"


def test_tag_filters_apply_in_zots_order() -> None:
    rule = TagFilter(regex=re.compile("^v?[0-9]+"), exclude=re.compile("-rc"), semver=True)
    tags = ["1.0.0", "v2.1", "2.0.0-rc1", "latest", "3.x", "10"]
    assert filter_tags(tags, rule) == ["1.0.0", "v2.1", "10"]


def test_regex_matches_anywhere_like_go() -> None:
    assert filter_tags(["a-4.1", "5"], TagFilter(regex=re.compile("4.*"))) == ["a-4.1"]


def test_mapping_filters_tags_by_the_upstream_rule() -> None:
    mapping = Mapping((ContentRule("a/**", tags=TagFilter(semver=True)), ContentRule("b")))
    assert mapping.tags("a/x", ["1.2.3", "latest"]) == ["1.2.3"]
    assert mapping.tags("b", ["1.2.3", "latest"]) == ["1.2.3", "latest"]


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("1", True),
        ("1.2", True),
        ("v1.2.3", True),
        ("1.2.3-beta.1+b5", True),
        ("latest", False),
        ("1.2.3.4", False),
        ("", False),
    ],
)
def test_semver_is_the_go_librarys_grammar(tag: str, ok: bool) -> None:
    assert is_semver(tag) is ok
