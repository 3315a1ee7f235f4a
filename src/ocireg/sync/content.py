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

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ocireg.sync.settings import ContentRule, TagFilter

_META = frozenset("*?[{")
# The grammar of the Go semver library zot uses (github.com/Masterminds/semver), anchored.
_SEMVER = re.compile(
    r"v?[0-9]+(\.[0-9]+)?(\.[0-9]+)?"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A doublestar glob as a regular expression matching whole names."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if pattern.startswith("**", i):
            before = i == 0 or pattern[i - 1] == "/"
            after = i + 2 == n or pattern[i + 2] == "/"
            if before and after:
                if out and out[-1] == "/":
                    out.pop()  # "a/**" matches "a" too: the slash goes with the stars
                    out.append("(?:/.*)?" if i + 2 == n else "(?:/.*)?/")
                    i += 3
                elif i + 2 == n:
                    out.append(".*")
                    i += 2
                else:
                    out.append("(?:.*/)?")
                    i += 3
                continue
            out.append("[^/]*")  # "**" inside a component is just "*"
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        elif c == "{":
            end = pattern.find("}", i)
            if end == -1:
                out.append(re.escape(c))
            else:
                options = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(glob_regex(o).pattern for o in options) + ")")
                i = end
        elif c == "/":
            out.append("/")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def glob_match(pattern: str, name: str) -> bool:
    return glob_regex(pattern).fullmatch(name) is not None


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
