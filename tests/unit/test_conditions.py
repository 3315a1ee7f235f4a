"""Policy conditions decided in-process (`ocireg.auth.policy`, `ocireg.auth.conditions`):
the order zot tries policies in and whose message a refusal carries, the admin policy's
conditions, what `req` holds, and listings that do not evaluate conditions. Over HTTP, and
against zot: tests/auth/test_conditions.py, tests/interop/test_conditions.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ocireg.auth.conditions import AGENT_MAX, FORWARDED_MAX, RequestFacts
from ocireg.auth.policy import AccessPolicy, Decision
from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.identity import ANONYMOUS, Identity


def policy_of(access_control: dict[str, Any]) -> AccessPolicy:
    config = build_config(
        {"storage": {"rootDirectory": "/r"}, "http": {"accessControl": access_control}}
    )
    assert config.auth.access_control is not None
    return AccessPolicy(config.auth.access_control)


def rule(expression: str, message: str, **who: Any) -> dict[str, Any]:
    return {
        "actions": ["read"],
        "conditions": [{"expression": expression, "message": message}],
        **who,
    }


ALICE = Identity(user="alice", groups=("devs",), method="basic")
GET = RequestFacts(method="GET", reference="v1", client_ip="127.0.0.1", user_agent="ua/1")


def test_the_last_refusing_policy_gives_the_reason_and_a_later_one_may_grant() -> None:
    policy = policy_of(
        {
            "repositories": {
                "**": {
                    "policies": [
                        rule('req.method == "PUT"', "by group", groups=["devs"]),
                        rule('req.tag == "v2"', "by name", users=["alice"]),
                    ]
                }
            }
        }
    )
    # zot tries the policies naming the user first, then those naming a group.
    assert policy.decide(ALICE, "read", "a", GET) == Decision(False, "by group")
    put = RequestFacts(method="PUT", reference="v1")
    assert policy.decide(ALICE, "read", "a", put) == Decision(True)
    # A listing takes every condition to hold.
    assert policy.can(ALICE, "read", "a")


def test_the_admin_policy_conditions_and_reason() -> None:
    policy = policy_of(
        {
            "repositories": {"**": {"policies": [rule("false", "repo says no", users=["root"])]}},
            "adminPolicy": {
                "users": ["root"],
                "actions": ["read"],
                "conditions": [{"expression": "req.tls.enabled", "message": "TLS please"}],
            },
        }
    )
    root = Identity(user="root", method="basic")
    assert policy.decide(root, "read", "a", GET) == Decision(False, "TLS please")
    assert policy.decide(root, "read", "a", RequestFacts(tls=True)) == Decision(True)


XFF = RequestFacts(forwarded_for=("1.2.3.4", "5.6.7.8"))
DIGEST = RequestFacts(reference="sha256:" + "a" * 64)


@pytest.mark.parametrize(
    ("expression", "facts", "decision"),
    [
        ('req.referenceType == "tag" && req.tag == "v1" && req.digest == ""', GET, Decision(True)),
        ('req.referenceType == "digest" && req.digest == req.reference', DIGEST, Decision(True)),
        ('req.referenceType == "" && req.reference == ""', RequestFacts(), Decision(True)),
        ('req.user.username == "alice" && "devs" in req.user.groups', GET, Decision(True)),
        ("!req.auth.anonymous && !req.auth.admin", GET, Decision(True)),
        ('req.action == "read" && req.repository == "team/app"', GET, Decision(True)),
        ('req.client.ip == "127.0.0.1" && req.userAgent == "ua/1"', GET, Decision(True)),
        ('req.client.forwardedFor == ["1.2.3.4", "5.6.7.8"]', XFF, Decision(True)),
        ('req.tls.version == "" && req.claims == {}', GET, Decision(True)),
        ('req.time > timestamp("2020-01-01T00:00:00Z")', GET, Decision(True)),
        ('req.method == "PUT"', GET, Decision(False, "m")),  # false: its message
        # An evaluation error or a result that is no boolean: refused, the client told nothing
        ("req.client.forwardedFor[0] == 'x'", GET, Decision(False)),  # index out of range
        ("req.nope", GET, Decision(False)),  # no such key
        ("req.repository", GET, Decision(False)),  # a string
    ],
)
def test_what_req_holds(expression: str, facts: RequestFacts, decision: Decision) -> None:
    access = {"repositories": {"**": {"policies": [rule(expression, "m", users=["alice"])]}}}
    assert policy_of(access).decide(ALICE, "read", "team/app", facts) == decision


def test_req_claims_are_a_workload_tokens_claims() -> None:
    """A workload identity's verified claims, numbers as doubles (as zot decodes them);
    other logins have none, so a condition reading one does not hold for them."""
    expression = 'req.claims.team == "blue" && req.claims.exp > 1 && type(req.claims.exp) == double'
    access = {"repositories": {"**": {"policies": [rule(expression, "m", groups=["ci"])]}}}
    policy = policy_of(access)
    claims = {"sub": "builder", "team": "blue", "exp": 1_900_000_000}
    blue = Identity(user="builder", groups=("ci",), method="oidc", claims=claims)
    red = Identity(user="other", groups=("ci",), method="oidc", claims={**claims, "team": "red"})
    password = Identity(user="builder", groups=("ci",), method="basic")
    assert policy.decide(blue, "read", "a", GET) == Decision(True)
    assert policy.decide(red, "read", "a", GET) == Decision(False, "m")
    assert policy.decide(password, "read", "a", GET) == Decision(False)  # no such key


def test_headers_past_what_conditions_read_meet_no_condition() -> None:
    """A client's X-Forwarded-For or User-Agent past the limits meets no condition (an
    expression may cost the square of them, on the event loop); up to them, as usual."""
    access = {"repositories": {"**": {"policies": [rule("true", "m", users=["alice"])]}}}
    policy = policy_of(access)
    hops = tuple(f"192.0.2.{n}" for n in range(FORWARDED_MAX))
    assert policy.decide(ALICE, "read", "a", replace(GET, forwarded_for=hops)).allowed
    more = replace(GET, forwarded_for=(*hops, "192.0.2.250"))
    assert policy.decide(ALICE, "read", "a", more) == Decision(False)
    assert policy.decide(ALICE, "read", "a", replace(GET, user_agent="u" * AGENT_MAX)).allowed
    longer = replace(GET, user_agent="u" * (AGENT_MAX + 1))
    assert policy.decide(ALICE, "read", "a", longer) == Decision(False)


def test_anonymous_and_default_policies_are_not_conditional() -> None:
    policy = policy_of(
        {
            "repositories": {
                "**": {
                    "anonymousPolicy": ["read"],
                    "policies": [rule("false", "m", users=["alice"])],
                }
            }
        }
    )
    assert policy.decide(ANONYMOUS, "read", "a", GET).allowed
    assert policy.decide(ALICE, "read", "a", GET) == Decision(False, "m")


def test_a_policy_without_conditions_loads_no_cel() -> None:
    assert policy_of({"repositories": {"**": {"defaultPolicy": ["read"]}}}).conditions is None


def test_a_compile_error_names_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        policy_of(
            {
                "adminPolicy": {
                    "users": ["a"],
                    "actions": ["read"],
                    "conditions": [{"expression": "req."}],
                }
            }
        )
    assert caught.value.path == "http.accessControl.adminPolicy.conditions[0].expression"
    assert "Syntax error" in caught.value.problem
