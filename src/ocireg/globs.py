"""Repository globs with zot's meaning (doublestar): `*` and `?` stay inside one path
component, `**` as a whole component spans any number of components (zero included, so
`team/**` matches `team` itself), `[a-z]` / `[!a-z]` classes and `{a,b}` alternatives."""

from __future__ import annotations

import functools
import re


class GlobError(ValueError):
    pass


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression that matches exactly the names `pattern` matches."""
    regex, end = _parse(pattern, 0, in_braces=False)
    if end != len(pattern):  # only a stray `}` or `,` can stop the top level early
        raise GlobError(f"unexpected {pattern[end]!r} at position {end}")
    return re.compile(f"(?s:{regex})\\Z")


def glob_match(pattern: str, name: str) -> bool:
    try:
        return compile_glob(pattern).match(name) is not None
    except GlobError:
        return False  # invalid globs never match (and `ocireg verify` reports them)


def _whole_component(pattern: str, start: int, end: int) -> bool:
    before = pattern[start - 1] if start > 0 else "/"
    after = pattern[end] if end < len(pattern) else "/"
    return before in "/{," and after in "/},"


def _parse(pattern: str, i: int, in_braces: bool) -> tuple[str, int]:
    out: list[str] = []
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if in_braces and c in ",}":
            return "".join(out), i
        if not in_braces and c in ",}":
            if c == "}":
                raise GlobError(f"unmatched '}}' at position {i}")
            out.append(re.escape(c))
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise GlobError("trailing backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            if j - i >= 2 and _whole_component(pattern, i, j):
                if j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # `**/x`: zero or more components before x
                    j += 1
                elif out and out[-1] == "/":
                    out[-1] = "(?:/.*)?"  # `x/**`: x itself or anything below it
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            cls, i = _char_class(pattern, i)
            out.append(cls)
        elif c == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                alt, i = _parse(pattern, i, in_braces=True)
                alternatives.append(alt)
                if i >= n:
                    raise GlobError("unclosed '{'")
                i += 1
                if pattern[i - 1] == "}":
                    break
            out.append("(?:" + "|".join(alternatives) + ")")
        else:
            out.append(re.escape(c))
            i += 1
    if in_braces:
        raise GlobError("unclosed '{'")
    return "".join(out), i


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    j = i + 1
    negate = j < len(pattern) and pattern[j] in "!^"
    if negate:
        j += 1
    body: list[str] = []
    first = True
    while j < len(pattern) and (pattern[j] != "]" or first):
        c = pattern[j]
        if c == "\\" and j + 1 < len(pattern):
            body.append(re.escape(pattern[j + 1]))
            j += 2
        elif c == "-" and body and j + 1 < len(pattern) and pattern[j + 1] != "]":
            lo, hi = body[-1], pattern[j + 1]
            if hi == "\\" and j + 2 < len(pattern):
                hi = pattern[j + 2]
                j += 1
            if lo.lstrip("\\") > hi:
                raise GlobError(f"bad range {lo.lstrip(chr(92))}-{hi} in class at position {i}")
            body.append("-" + re.escape(hi))
            j += 2
        else:
            body.append(re.escape(c))
            j += 1
        first = False
    if j >= len(pattern):
        raise GlobError(f"unclosed '[' at position {i}")
    if not body:
        raise GlobError(f"empty character class at position {i}")
    inner = "".join(body)
    return ("[^/" + inner + "]" if negate else "(?![/])[" + inner + "]"), j + 1
