"""Access-control decisions in-process (`ocireg.auth.policy`), from a config written with
zot's keys: the longest matching glob chooses the rules, policies name users or groups,
`defaultPolicy` is for any authenticated user, `anonymousPolicy` for anonymous ones, and
`adminPolicy` applies everywhere. The HTTP side (401 vs 403) is tests/auth/test_policy.py."""

from __future__ import annotations

import pytest

from ocireg.auth.policy import AccessPolicy
from ocireg.config import build_config
from ocireg.identity import ANONYMOUS, Identity
from tests.auth.conftest import ACCESS_CONTROL

# Users as in tests/auth/conftest.py: alice and bob are named by policies, carol is in
# group Devs, dave is named nowhere, root is the admin; ops may read the metrics.
ACCESS_CONTROL_WITH_METRICS = {**ACCESS_CONTROL, "Metrics": {"users": ["ops"]}}


@pytest.fixture(scope="module")
def policy() -> AccessPolicy:
    config = build_config(
        {"storage": {"rootDirectory": "/r"}, "http": {"accessControl": ACCESS_CONTROL_WITH_METRICS}}
    )
    assert config.auth.access_control is not None
    return AccessPolicy(config.auth.access_control)


def user(name: str, *groups: str) -> Identity:
    return Identity(user=name, groups=groups, method="basic")


@pytest.mark.parametrize(
    ("who", "action", "repository", "allowed"),
    [
        # `**`: any authenticated user reads, nobody else writes, anonymous gets nothing
        (user("dave"), "read", "misc/app", True),
        (user("dave"), "create", "misc/app", False),
        (ANONYMOUS, "read", "misc/app", False),
        # `public/**`: anonymous reads, users read and create
        (ANONYMOUS, "read", "public/x/y", True),
        (ANONYMOUS, "create", "public/x", False),
        (user("dave"), "create", "public/x", True),
        (user("dave"), "delete", "public/x", False),
        # `team/*` (the glob was written `Team/*`: keys are lower-cased as zot does)
        (user("alice"), "create", "team/app", True),
        (user("alice"), "delete", "team/app", False),
        (user("bob"), "delete", "team/app", True),
        (user("carol"), "read", "team/app", True),  # via the group Devs
        (user("carol"), "create", "team/app", False),
        (user("dave"), "read", "team/app", False),  # the longest glob wins: no `**` read
        (user("erin", "DEVS"), "read", "team/app", True),  # a group the token carries
        # `team/secret` is longer than `team/*`: only its own rules apply
        (user("alice"), "read", "team/secret", False),
        (user("bob"), "read", "team/secret", True),
        (user("bob"), "delete", "team/secret", False),
        # adminPolicy: everything, everywhere, when the repository's rules do not allow it
        (user("root"), "delete", "team/secret", True),
        (user("root"), "update", "misc/app", True),
    ],
)
def test_decisions(
    policy: AccessPolicy, who: Identity, action: str, repository: str, allowed: bool
) -> None:
    assert policy.can(who, action, repository) is allowed


def test_rules_come_from_the_longest_matching_glob(policy: AccessPolicy) -> None:
    secret = policy.rules_for("team/secret")
    assert secret is not None and secret.default_policy == frozenset()
    assert policy.rules_for("team/app") is policy.settings.repositories["team/*"]
    assert policy.rules_for("misc") is policy.settings.repositories["**"]


def test_groups_of_a_user(policy: AccessPolicy) -> None:
    assert policy.groups_of("carol") == ("devs",)
    assert policy.groups_of(None) == ()


def test_anonymous_access_is_granted_somewhere(policy: AccessPolicy) -> None:
    assert policy.anonymous_may_do_anything()


def test_no_anonymous_policy_anywhere() -> None:
    config = build_config(
        {
            "storage": {"rootDirectory": "/r"},
            "http": {"accessControl": {"repositories": {"**": {"defaultPolicy": ["read"]}}}},
        }
    )
    assert config.auth.access_control is not None
    assert not AccessPolicy(config.auth.access_control).anonymous_may_do_anything()


def test_metrics_are_for_the_named_users_only(policy: AccessPolicy) -> None:
    assert policy.metrics_allowed(user("ops"))
    assert not policy.metrics_allowed(user("dave"))
    assert not policy.metrics_allowed(ANONYMOUS)
