"""zot's retention rules (`storage.retention`): the configuration, and what the rules decide
for one repository given push and pull times (ops/retention.py). Garbage collection applying
them is in tests/unit/test_gc.py, a served registry in tests/ops/test_retention.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.meta.redis import RedisMeta
from ocireg.meta.sqlite import SqliteMeta
from ocireg.ops.retention import NO_PATTERN, NO_RULE, Times, dropped_tags, kept_untagged
from ocireg.registry.pulls import PullLog
from ocireg.settings.drivers import RedisSettings
from ocireg.settings.retention import RetentionPolicy
from tests.support.server import free_port

DAY = 86400.0
NOW = 1_000 * DAY


def policy(**retention: Any) -> RetentionPolicy:
    raw = {"repositories": ["**"], **retention}
    config = build_config(
        {"storage": {"rootDirectory": "/tmp/x", "retention": {"policies": [raw]}}}
    )
    return config.retention.policies[0]


def times(pushed: dict[str, float], pulled: dict[str, float] | None = None, **kw: Any) -> Times:
    """Days ago -> absolute times; pulls watched for a year unless said otherwise."""
    kw.setdefault("watched_since", NOW - 365 * DAY)
    return Times(
        now=NOW,
        pushed={d: NOW - days * DAY for d, days in pushed.items()},
        pulled={d: NOW - days * DAY for d, days in (pulled or {}).items()},
        **kw,
    )


def test_the_zot_example_configuration_reads_with_zot_defaults() -> None:
    config = build_config(
        {
            "storage": {
                "rootDirectory": "/tmp/x",
                "gcDelay": "2h",
                "retention": {
                    "dryRun": False,
                    "policies": [
                        {
                            "repositories": ["infra/*", "prod/*"],
                            "keepTags": [{"patterns": ["v2.*"]}],
                        },
                        {
                            "Repositories": ["tmp/**"],
                            "deleteReferrers": True,
                            "deleteUntagged": False,
                            "keepTags": [{"patterns": ["v1.*"], "pulledWithin": "168h"}],
                            "keepUntagged": {"mostRecentlyPushedCount": 10},
                        },
                    ],
                },
            }
        }
    )
    first, second = config.retention.policies
    assert "storage.retention" not in config.warnings
    assert config.retention.delay is None  # gcDelay applies, as in zot
    assert (first.delete_referrers, first.delete_untagged) == (False, True)
    assert first.covers("infra/a") and not first.covers("infra/a/b")
    assert second.covers("tmp/a/b/c") and second.covers("tmp")
    assert second.keep_tags[0].rules.pulled_within == 168 * 3600
    assert second.keep_untagged is not None and second.keep_untagged.most_recently_pushed == 10
    assert config.retention.policy("prod/x") is first
    assert config.retention.policy("elsewhere") is None


@pytest.mark.parametrize(
    ("retention", "where"),
    [
        (
            {"policies": [{"repositories": ["a/{b"]}]},
            "storage.retention.policies[0].repositories[0]",
        ),
        (
            {"policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["(v1"]}]}]},
            "storage.retention.policies[0].keepTags[0].patterns[0]",
        ),
        ({"policies": [{"repository": ["**"]}]}, "storage.retention.policies[0].repository"),
        (
            {"policies": [{"repositories": ["**"], "keepTags": [{"pushedWithin": "soon"}]}]},
            "storage.retention.policies[0].keepTags[0].pushedWithin",
        ),
        ({"delay": "-1h"}, "storage.retention.delay"),
        ({"dryRun": "yes"}, "storage.retention.dryRun"),
    ],
)
def test_a_wrong_key_or_value_is_an_error_naming_it(retention: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"storage": {"rootDirectory": "/tmp/x", "retention": retention}})
    assert caught.value.path == where


def test_without_gc_the_delay_defaults_to_zero_as_in_zot() -> None:
    config = build_config(
        {"storage": {"rootDirectory": "/tmp/x", "gc": False, "retention": {"policies": []}}}
    )
    assert config.retention.delay == 0.0


def test_a_tag_matching_no_pattern_goes_and_patterns_alone_keep() -> None:
    rules = policy(keepTags=[{"patterns": ["^v[0-9]", "-prod$"]}])
    tags = [("v1", "a"), ("web-prod", "b"), ("latest", "c"), ("dev-v1", "d")]
    decided = dropped_tags(rules, tags, times({"a": 900, "b": 900, "c": 1, "d": 1}))
    assert decided == {"latest": ("c", NO_PATTERN), "dev-v1": ("d", NO_PATTERN)}


def test_patterns_are_found_anywhere_in_the_tag_as_go_regexp_matches() -> None:
    rules = policy(keepTags=[{"patterns": ["v2"]}])
    assert dropped_tags(rules, [("release-v2.1", "a")], times({"a": 5})) == {}


def test_without_keep_tags_no_tag_is_removed() -> None:
    assert dropped_tags(policy(), [("x", "a")], times({"a": 900})) == {}


def test_a_tag_belongs_to_the_first_entry_that_matches_it() -> None:
    # "v1" matches both entries; the first (keep nothing older than a day) decides.
    rules = policy(keepTags=[{"patterns": ["v1"], "pushedWithin": "24h"}, {"patterns": [".*"]}])
    decided = dropped_tags(rules, [("v1", "a"), ("other", "b")], times({"a": 3, "b": 3}))
    assert decided == {"v1": ("a", NO_RULE)}


def test_most_recently_pushed_keeps_the_newest_n_of_its_entry() -> None:
    rules = policy(keepTags=[{"mostRecentlyPushedCount": 2}])
    tags = [(f"t{n}", f"d{n}") for n in range(5)]
    decided = dropped_tags(rules, tags, times({f"d{n}": n for n in range(5)}))
    assert set(decided) == {"t2", "t3", "t4"}


def test_rules_of_one_entry_keep_what_any_of_them_keeps() -> None:
    rules = policy(keepTags=[{"mostRecentlyPushedCount": 1, "pulledWithin": "72h"}])
    tags = [("new", "a"), ("pulled", "b"), ("cold", "c")]
    decided = dropped_tags(rules, tags, times({"a": 1, "b": 30, "c": 30}, {"b": 2, "c": 10}))
    assert set(decided) == {"cold"}


def test_pulled_within_also_keeps_what_was_pushed_within_the_window() -> None:
    rules = policy(keepTags=[{"pulledWithin": "72h"}])
    decided = dropped_tags(rules, [("fresh", "a"), ("old", "b")], times({"a": 1, "b": 9}))
    assert set(decided) == {"old"}


def test_most_recently_pulled_ranks_by_the_last_pull() -> None:
    rules = policy(keepTags=[{"mostRecentlyPulledCount": 1}])
    tags = [("a", "da"), ("b", "db"), ("never", "dn")]
    decided = dropped_tags(rules, tags, times({"da": 50, "db": 50, "dn": 40}, {"da": 20, "db": 3}))
    assert set(decided) == {"a", "never"}


def test_before_pulls_were_watched_an_image_counts_as_pulled_when_watching_began() -> None:
    rules = policy(keepTags=[{"pulledWithin": "168h"}])
    tags = [("old", "a"), ("new", "b")]
    pushed = {"a": 400, "b": 20}
    recently = times(pushed, watched_since=NOW - 3 * DAY)  # watched 3 days: too short
    assert dropped_tags(rules, tags, recently) == {}
    # watched 30 days: "new" was pushed meanwhile and never pulled, "old" not pulled since
    long_ago = times(pushed, watched_since=NOW - 30 * DAY)
    assert set(dropped_tags(rules, tags, long_ago)) == {"old", "new"}
    pulled = times(pushed, {"a": 2}, watched_since=NOW - 30 * DAY)
    assert set(dropped_tags(rules, tags, pulled)) == {"new"}
    never = times(pushed, watched_since=None)  # nothing noted yet: nothing proves a lack
    assert dropped_tags(rules, tags, never) == {}


def test_without_every_pull_at_hand_pull_rules_keep_everything_they_cover() -> None:
    incomplete = times({"a": 400, "b": 300}, pulls_complete=False)
    tags = [("x", "a"), ("y", "b")]
    for rule in ({"pulledWithin": "24h"}, {"mostRecentlyPulledCount": 1}):
        assert dropped_tags(policy(keepTags=[rule]), tags, incomplete) == {}
    pushes = policy(keepTags=[{"mostRecentlyPushedCount": 1}])
    assert set(dropped_tags(pushes, tags, incomplete)) == {"x"}  # push rules still apply


def test_a_tag_whose_manifest_is_missing_stays() -> None:
    rules = policy(keepTags=[{"patterns": ["nothing-matches"]}])
    assert dropped_tags(rules, [("x", "gone")], times({})) == {}


def test_keep_untagged_keeps_by_its_rules_and_nothing_without_rules() -> None:
    ranked = policy(keepUntagged={"mostRecentlyPushedCount": 1, "pushedWithin": "48h"})
    pushed = times({"a": 1, "b": 5, "c": 9})
    assert kept_untagged(ranked, ["a", "b", "c", "lost"], pushed) == {"a", "lost"}
    assert kept_untagged(policy(keepUntagged={}), ["a"], pushed) == set()
    assert kept_untagged(policy(), ["a"], pushed) == set()


def test_pull_rules_in_a_cluster_on_s3_without_redis_are_said_to_keep_everything() -> None:
    pulls = {"policies": [{"repositories": ["**"], "keepTags": [{"pulledWithin": "24h"}]}]}
    pushes = {"policies": [{"repositories": ["**"], "keepTags": [{"pushedWithin": "24h"}]}]}
    cluster = {"members": ["127.0.0.1:1", "127.0.0.1:2"], "hashKey": "k" * 16}

    def notices(retention: dict[str, Any], redis: bool) -> list[str]:
        storage: dict[str, Any] = {
            "rootDirectory": "/r",
            "storageDriver": {"name": "s3", "bucket": "b"},
            "retention": retention,
        }
        if redis:
            storage["remoteCache"] = True
            storage["cacheDriver"] = {"name": "redis", "url": "redis://127.0.0.1:6379"}
        config = build_config({"storage": storage, "cluster": cluster})
        return [n for n in config.notices if n.startswith("storage.retention")]

    assert len(notices(pulls, redis=False)) == 1
    assert notices(pulls, redis=True) == []
    assert notices(pushes, redis=False) == []


def test_the_pull_log_keeps_what_a_store_down_could_not_take(tmp_path: Path) -> None:
    down = RedisMeta(RedisSettings(url=f"redis://127.0.0.1:{free_port()}"))
    log = PullLog(down, clock=lambda: 100.0)
    log.saw("app", "sha256:a")
    asyncio.run(log.flush())  # refused: kept for the next flush
    log.clock = lambda: 200.0
    log.saw("app", "sha256:b")
    log.meta = SqliteMeta(tmp_path / "meta.db")
    asyncio.run(log.flush())
    assert asyncio.run(log.meta.pulls("app")) == {"sha256:a": 100.0, "sha256:b": 200.0}
    assert asyncio.run(log.meta.pulls_since()) == 200.0


def test_patterns_are_go_regular_expressions() -> None:
    """RE2's syntax, as zot compiles them: a POSIX class, `\\z`, a Unicode class."""
    rules = policy(keepTags=[{"patterns": [r"^v[[:digit:]]+$", r"-rc\z", r"^\pL+$"]}])
    tags = [("v12", "a"), ("v-x", "b"), ("1.0-rc", "c"), ("héllo", "d"), ("v1.0", "e")]
    decided = dropped_tags(rules, tags, times({d: 1 for d in "abcde"}))
    assert set(decided) == {"v-x", "v1.0"}


def test_push_times_that_tie_are_ordered_as_index_json_lists_the_tags() -> None:
    """S3's LastModified counts whole seconds: tags pushed within one second tie, and the
    one index.json lists later was pushed later."""
    rules = policy(keepTags=[{"mostRecentlyPushedCount": 1}])
    same_second = times({"d1": 1, "d2": 1})
    assert set(dropped_tags(rules, [("b-first", "d1"), ("a-second", "d2")], same_second)) == {
        "b-first"
    }
    assert set(dropped_tags(rules, [("a-first", "d1"), ("b-second", "d2")], same_second)) == {
        "a-first"
    }
