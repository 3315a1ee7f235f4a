"""The regular expressions in zot's config are Go's: RE2 syntax (POSIX classes such as
`[[:digit:]]`, `\\z`, `\\pL`, `\\Q...\\E`; no backreferences), found anywhere in the text,
as Go's `MatchString`. Python's `re` reads some of these differently, or not at all, so they
are compiled by RE2 itself (google-re2): a pattern keeps here the meaning it has in zot."""

from __future__ import annotations

from typing import Protocol

import re2


class GoRegexp(Protocol):
    def search(self, text: str) -> object | None: ...


class GoRegexpError(ValueError):
    pass


def compile_go(pattern: str) -> GoRegexp:
    options = re2.Options()
    options.log_errors = False  # the error is raised; RE2 would also print it to stderr
    try:
        compiled: GoRegexp = re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise GoRegexpError(reason.decode() if isinstance(reason, bytes) else str(reason)) from None
    return compiled
