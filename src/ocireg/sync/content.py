"""Content rules: which upstream repositories a registry entry covers, where they land
locally, and which tags are copied. The semantics are zot's:

- `prefix` is a doublestar glob over the upstream repository name (a leading `/` is
  ignored): `*` and `?` stay within one path component, `**` crosses them, `[...]` and
  `{a,b}` as in a shell; `library/**` also matches `library` itself.
- The local name is `destination` + the upstream name; with `stripPrefix` the prefix's
  literal part (the prefix with `/` and `*` trimmed off both ends) is removed first.
- The reverse (on demand: a local name -> the upstream name) matches the local name against
  `destination/<prefix>` (with `stripPrefix`: `destination/<prefix's glob part>`), then undoes
  the mapping. The rules are tried in order; the first match wins.
- Tags: `regex` keeps the tags it matches (anywhere in the tag, as Go's MatchString),
  `excludeRegex` drops the ones it matches, `semver` keeps tags that parse as semantic
  versions (an optional `v`, one to three numbers, optional pre-release and build).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ocireg.globs import glob_match
from ocireg.sync.settings import ContentRule, TagFilter

_META = frozenset("*?[{")
# The grammar of the Go semver library zot uses (github.com/Masterminds/semver), anchored.
_SEMVER = re.compile(
    r"v?[0-9]+(\.[0-9]+)?(\.[0-9]+)?"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


def split_pattern(pattern: str) -> tuple[str, str]:
    """The literal directory part of a glob and the rest, split at the last `/` before the
    first meta character (doublestar's SplitPattern)."""
    split = -1
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
        elif c == "/":
            split = i
        elif c in _META:
            break
        i += 1
    if split == 0:
        return "/", pattern[1:]
    if split > 0:
        return pattern[:split], pattern[split + 1 :]
    return ".", pattern


@dataclass(frozen=True)
class Mapping:
    """One registry entry's content rules (none: every repository, under its own name)."""

    rules: Sequence[ContentRule]

    def rule_for_upstream(self, remote: str) -> ContentRule | None:
        for rule in self.rules:
            if glob_match(rule.prefix.removeprefix("/"), remote):
                return rule
        return None

    def rule_for_local(self, local: str) -> ContentRule | None:
        local = local.strip("/")
        for rule in self.rules:
            prefix = rule.prefix.strip("/") + "/"
            destination = rule.destination.strip("/")
            tail = split_pattern(prefix)[1] if rule.strip_prefix else prefix
            if glob_match(f"{destination}/{tail}".strip("/"), local):
                return rule
        return None

    def local_name(self, remote: str) -> str | None:
        """Where an upstream repository lands; None if no rule covers it."""
        if not self.rules:
            return remote
        rule = self.rule_for_upstream(remote)
        return None if rule is None else destination_of(remote, rule)

    def remote_name(self, local: str) -> str | None:
        """The upstream repository a local one mirrors; None if no rule covers it."""
        if not self.rules:
            return local
        rule = self.rule_for_local(local)
        return None if rule is None else source_of(local, rule)

    def tags(self, remote: str, tags: Iterable[str]) -> list[str]:
        rule = self.rule_for_upstream(remote)
        tags = list(tags)
        return filter_tags(tags, rule.tags) if rule is not None and rule.tags else tags


def destination_of(remote: str, rule: ContentRule) -> str:
    remote = remote.strip("/")
    if rule.strip_prefix:
        remote = remote.removeprefix(rule.prefix.strip("/*")).strip("/")
    return f"{rule.destination.strip('/')}/{remote}".strip("/")


def source_of(local: str, rule: ContentRule) -> str:
    local = local.strip("/").removeprefix(rule.destination.strip("/")).strip("/")
    if rule.strip_prefix:
        local = f"{rule.prefix.strip('/*')}/{local}"
    return local.strip("/")


def filter_tags(tags: Iterable[str], rule: TagFilter) -> list[str]:
    kept = list(tags)
    if rule.regex is not None:
        kept = [t for t in kept if rule.regex.search(t)]
    if rule.exclude is not None:
        kept = [t for t in kept if not rule.exclude.search(t)]
    if rule.semver:
        kept = [t for t in kept if is_semver(t)]
    return kept


def is_semver(tag: str) -> bool:
    return _SEMVER.fullmatch(tag) is not None
