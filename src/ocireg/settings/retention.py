"""`storage.retention`, zot's retention policies (zot v2.1's keys and defaults).

"retention": {
  "dryRun": false,           # decide and log, change nothing
  "delay": "24h",            # untagged manifests and referrers younger than this stay
  "policies": [{             # the first whose `repositories` glob matches applies
    "repositories": ["infra/*"],
    "deleteReferrers": false,
    "deleteUntagged": true,
    "keepTags": [{           # a tag falls under the first entry whose patterns match
      "patterns": ["v2.*"],  # Go (RE2) regular expressions, found anywhere in the tag
      "pulledWithin": "168h", "pushedWithin": "168h",
      "mostRecentlyPushedCount": 10, "mostRecentlyPulledCount": 10
    }],
    "keepUntagged": {"pushedWithin": "24h"}
  }]
}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocireg.errors import ConfigError
from ocireg.globs import GlobError, compile_glob, glob_match
from ocireg.goregexp import GoRegexp, GoRegexpError, compile_go
from ocireg.settings.keys import (
    Context,
    boolean,
    canonical_keys,
    duration,
    integer,
    join,
    string_list,
)

_RULE_KEYS = ("pulledWithin", "pushedWithin", "mostRecentlyPushedCount", "mostRecentlyPulledCount")


@dataclass(frozen=True)
class KeepRules:
    """What keeps a tag (or an untagged manifest): any one rule is enough. No rule at all
    keeps whatever the entry's patterns match."""

    pulled_within: float | None = None  # seconds
    pushed_within: float | None = None
    most_recently_pushed: int = 0
    most_recently_pulled: int = 0

    @property
    def any(self) -> bool:
        return bool(
            self.most_recently_pulled
            or self.most_recently_pushed
            or self.pulled_within is not None
            or self.pushed_within is not None
        )

    @property
    def on_pulls(self) -> bool:
        return bool(self.most_recently_pulled or self.pulled_within is not None)


@dataclass(frozen=True)
class KeepTags:
    patterns: tuple[GoRegexp, ...]  # none: every tag
    rules: KeepRules

    def covers(self, tag: str) -> bool:
        return not self.patterns or any(p.search(tag) for p in self.patterns)


@dataclass(frozen=True)
class RetentionPolicy:
    repositories: tuple[str, ...]
    delete_referrers: bool = False
    delete_untagged: bool = True
    keep_tags: tuple[KeepTags, ...] = ()
    keep_untagged: KeepRules | None = None

    def covers(self, repo: str) -> bool:
        return any(glob_match(pattern, repo) for pattern in self.repositories)

    @property
    def on_pulls(self) -> bool:
        untagged = self.keep_untagged is not None and self.keep_untagged.on_pulls
        return untagged or any(k.rules.on_pulls for k in self.keep_tags)


@dataclass(frozen=True)
class RetentionSettings:
    dry_run: bool = False
    delay: float | None = None  # None: storage.gcDelay, as in zot
    policies: tuple[RetentionPolicy, ...] = ()

    def policy(self, repo: str) -> RetentionPolicy | None:
        return next((p for p in self.policies if p.covers(repo)), None)

    @property
    def on_pulls(self) -> bool:
        return any(p.on_pulls for p in self.policies)


def parse_retention(ctx: Context) -> RetentionSettings:
    return retention_of(ctx.get("storage.retention"), "storage.retention", ctx.get("storage.gc"))


def retention_of(node: Any, where: str, gc: Any) -> RetentionSettings:
    """A `retention` section (`storage.retention`, or a sub path's) of a storage whose `gc`
    key is `gc` (None: absent)."""
    if node is None:
        return RetentionSettings()
    raw = canonical_keys(node, ("dryRun", "delay", "policies"), where)
    delay = None
    if "delay" in raw:
        delay = duration(raw["delay"], f"{where}.delay")
    elif gc is False:
        delay = 0.0  # zot: without gc, the delays default to zero
    policies = raw.get("policies") or []
    if not isinstance(policies, list):
        raise ConfigError(f"{where}.policies", f"expected a list, got {policies!r}")
    return RetentionSettings(
        dry_run=boolean(raw.get("dryRun", False), f"{where}.dryRun"),
        delay=delay,
        policies=tuple(_policy(p, f"{where}.policies[{i}]") for i, p in enumerate(policies)),
    )


def _policy(node: Any, where: str) -> RetentionPolicy:
    raw = canonical_keys(
        node,
        ("repositories", "deleteReferrers", "deleteUntagged", "keepTags", "keepUntagged"),
        where,
    )
    repositories = string_list(raw.get("repositories") or [], join(where, "repositories"))
    for n, pattern in enumerate(repositories):
        try:
            compile_glob(pattern)
        except GlobError as exc:
            raise ConfigError(f"{where}.repositories[{n}]", f"invalid glob: {exc}") from None
    keep_tags = raw.get("keepTags") or []
    if not isinstance(keep_tags, list):
        raise ConfigError(join(where, "keepTags"), f"expected a list, got {keep_tags!r}")
    untagged = raw.get("keepUntagged")
    return RetentionPolicy(
        repositories=repositories,
        delete_referrers=boolean(raw.get("deleteReferrers", False), join(where, "deleteReferrers")),
        delete_untagged=boolean(raw.get("deleteUntagged", True), join(where, "deleteUntagged")),
        keep_tags=tuple(_keep_tags(k, f"{where}.keepTags[{i}]") for i, k in enumerate(keep_tags)),
        keep_untagged=None
        if untagged is None
        else _rules(
            canonical_keys(untagged, _RULE_KEYS, join(where, "keepUntagged")),
            join(where, "keepUntagged"),
        ),
    )


def _keep_tags(node: Any, where: str) -> KeepTags:
    raw = canonical_keys(node, ("patterns", *_RULE_KEYS), where)
    patterns: list[GoRegexp] = []
    for n, text in enumerate(string_list(raw.get("patterns") or [], join(where, "patterns"))):
        try:
            patterns.append(compile_go(text))
        except GoRegexpError as exc:
            raise ConfigError(
                f"{where}.patterns[{n}]", f"invalid regular expression: {exc}"
            ) from None
    return KeepTags(tuple(patterns), _rules(raw, where))


def _rules(raw: dict[str, Any], where: str) -> KeepRules:
    def within(key: str) -> float | None:
        return None if raw.get(key) is None else duration(raw[key], join(where, key))

    def count(key: str) -> int:
        value = integer(raw.get(key, 0), join(where, key))
        if value < 0:
            raise ConfigError(join(where, key), f"expected a count >= 0, got {value}")
        return value

    return KeepRules(
        pulled_within=within("pulledWithin"),
        pushed_within=within("pushedWithin"),
        most_recently_pushed=count("mostRecentlyPushedCount"),
        most_recently_pulled=count("mostRecentlyPulledCount"),
    )
