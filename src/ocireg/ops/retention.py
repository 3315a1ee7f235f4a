"""zot's retention rules (`storage.retention`), decided for one repository at a time; garbage
collection (`ops/gc.py`) applies what they decide.

As in zot: a tag falls under the first `keepTags` entry whose patterns match it and is
removed when it matches none; within an entry it stays when any one rule keeps it
(`pushedWithin`, `pulledWithin` (which also keeps what was pushed within the window),
`mostRecentlyPushedCount` and `mostRecentlyPulledCount` over the tags of that entry), or
always when the entry has no rule. A tag whose manifest cannot be found stays. Untagged
manifests are decided the same way by `keepUntagged`.

The push time of a manifest is when its blob was written (what zot also takes when it
rebuilds its database from storage); the pull time is what `registry/pulls.py` noted. Where
pulls were not watched, a missing pull proves nothing: a manifest pushed before pulls were
first noted counts as pulled then, so `pulledWithin` removes nothing until the store has
watched for the whole window. Where the pulls one collector sees are not all the pulls (a
cluster whose members do not share the metadata store), pull rules keep everything they
cover."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ocireg.settings.retention import KeepRules, RetentionPolicy

NO_PATTERN = "didn't meet any tag 'patterns' rules"
NO_RULE = "didn't meet any tag retention rule"


@dataclass(frozen=True)
class Times:
    """What the rules of one repository are decided with."""

    now: float
    pushed: dict[str, float]  # manifest digest -> when its blob was written
    pulled: dict[str, float]  # manifest digest -> last pull noted
    watched_since: float | None  # since when pulls are noted (None: they never were)
    pulls_complete: bool = True  # False: other members noted pulls this store cannot see

    def pull_time(self, digest: str) -> float:
        if not self.pulls_complete:
            return self.now
        at = self.pulled.get(digest, 0.0)
        since = self.now if self.watched_since is None else self.watched_since
        if self.pushed.get(digest, 0.0) < since:
            at = max(at, since)  # not watched then: it may have been pulled until `since`
        return at


@dataclass(frozen=True)
class _Candidate:
    key: str  # a tag, or the digest of an untagged manifest
    digest: str
    # Its place in index.json, where a new entry goes last: the push order where push times
    # tie (S3's LastModified counts whole seconds).
    order: int


def _keep(rules: KeepRules, group: list[_Candidate], times: Times) -> dict[str, str]:
    """The keys of `group` some rule keeps, each with the first rule that did."""
    kept: dict[str, str] = {}

    def mark(chosen: Iterable[_Candidate], rule: str) -> None:
        for c in chosen:
            kept.setdefault(c.key, rule)

    def pushed(c: _Candidate) -> float:
        return times.pushed[c.digest]

    def pulled(c: _Candidate) -> float:
        return times.pull_time(c.digest)

    if rules.most_recently_pulled:
        ranked = sorted(group, key=lambda c: (-pulled(c), -pushed(c), -c.order))
        # without every pull at hand no ranking is known: the rule keeps all it covers
        top = rules.most_recently_pulled if times.pulls_complete else len(ranked)
        mark(ranked[:top], "mostRecentlyPulledCount")
    if rules.most_recently_pushed:
        ranked = sorted(group, key=lambda c: (-pushed(c), -c.order))
        mark(ranked[: rules.most_recently_pushed], "mostRecentlyPushedCount")
    if rules.pulled_within is not None:
        since = times.now - rules.pulled_within
        # zot's rule: what was pushed within the window stays too, pulled or not
        mark((c for c in group if pulled(c) > since or pushed(c) > since), "pulledWithin")
    if rules.pushed_within is not None:
        since = times.now - rules.pushed_within
        mark((c for c in group if pushed(c) > since), "pushedWithin")
    return kept


def dropped_tags(
    policy: RetentionPolicy, tags: Iterable[tuple[str, str]], times: Times
) -> dict[str, tuple[str, str]]:
    """The tags (tag -> (digest, reason)) the policy's `keepTags` do not keep; nothing when
    it has none (zot: no tag retention). `tags` in index.json's order."""
    if not policy.keep_tags:
        return {}
    groups: dict[int, list[_Candidate]] = {}
    dropped: dict[str, tuple[str, str]] = {}
    for order, (tag, digest) in enumerate(tags):
        if digest not in times.pushed:
            continue  # its manifest is not in storage: kept, as zot keeps a tag without statistics
        entry = next((i for i, k in enumerate(policy.keep_tags) if k.covers(tag)), None)
        if entry is None:
            dropped[tag] = (digest, NO_PATTERN)
        else:
            groups.setdefault(entry, []).append(_Candidate(tag, digest, order))
    for entry, group in groups.items():
        rules = policy.keep_tags[entry].rules
        if not rules.any:
            continue  # kept by its patterns
        kept = _keep(rules, group, times)
        dropped.update((c.key, (c.digest, NO_RULE)) for c in group if c.key not in kept)
    return dropped


def kept_untagged(policy: RetentionPolicy, digests: Sequence[str], times: Times) -> set[str]:
    """The untagged manifests (in index.json's order) the policy's `keepUntagged` keeps
    (those whose manifest cannot be found included); none when it has no rule (then only the
    delay keeps them)."""
    rules = policy.keep_untagged
    if rules is None or not rules.any:
        return set()
    unknown = {d for d in digests if d not in times.pushed}
    group = [_Candidate(d, d, n) for n, d in enumerate(digests) if d in times.pushed]
    return unknown | set(_keep(rules, group, times))
