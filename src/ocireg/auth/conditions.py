"""zot's policy conditions: CEL expressions over the request that a policy needs to hold.

Each expression is compiled (parsed and type-checked) once per configuration, when the
access policy is built: `ocireg verify`, start-up and a reload refuse one that does not
compile, naming its key. At request time the compiled program is evaluated against one
variable, `req`, a map with zot's fields (see `request_map`). The program runs in the
calling thread: an evaluation costs microseconds (docs/performance.md, "Policy
conditions"), less than handing it to a thread would.

The engine (auth/celenv.py, shared with workload identity's claim mapping) is
cel-expr-python, Google's binding of cel-cpp: the same checker and the same standard
library as zot's cel-go, with zot's extensions. It is imported only when some policy has
conditions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

from ocireg.asgi import request_header
from ocireg.auth.celenv import (
    CelError,
    compile_expression,
    environment,
    evaluate,
    json_value,
    now,
)
from ocireg.settings.auth import AccessControlSettings, Condition, Policy

if TYPE_CHECKING:
    from cel_expr_python import cel

log = logging.getLogger("ocireg.auth")
FORWARDED_MAX = 64  # X-Forwarded-For entries (a real proxy chain has a few)
AGENT_MAX = 2048  # User-Agent characters (a client's is a few hundred at most)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a condition may see of the HTTP request, beyond who asks for what."""

    method: str = ""
    user_agent: str = ""
    reference: str = ""  # a manifest's tag or digest, as given; "" on other endpoints
    client_ip: str = ""  # the TCP peer
    forwarded_for: tuple[str, ...] = ()  # X-Forwarded-For, left to right, as sent
    tls: bool = False

    def oversized(self) -> bool:
        """Whether a header a client controls is past what conditions are given: CEL runs
        on the event loop, and some expressions cost the square of their input (a `map`
        over 9,000 forwarded addresses took 3 s), so such a request meets no condition."""
        return len(self.forwarded_for) > FORWARDED_MAX or len(self.user_agent) > AGENT_MAX


def facts_of(scope: Scope, reference: str | None) -> RequestFacts:
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-forwarded-for":
            parts = value.decode("latin-1").split(",")
            forwarded.extend(p.strip() for p in parts if p.strip())
    client = scope.get("client")
    agent = request_header(scope, b"user-agent")
    return RequestFacts(
        method=scope.get("method", ""),
        user_agent="" if agent is None else agent.decode("latin-1"),
        reference=reference or "",
        client_ip=str(client[0]) if client else "",
        forwarded_for=tuple(forwarded),
        tls=scope.get("scheme") == "https",
    )


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks to do what, as the policy saw it."""

    user: str | None
    groups: tuple[str, ...]
    admin: bool  # named by adminPolicy (whatever its actions)
    action: str
    repository: str
    # a workload's verified ID token claims (zot fills `req.claims` from those only)
    claims: Mapping[str, Any] = field(default_factory=dict)


def request_map(subject: Subject, facts: RequestFacts, time: Any) -> dict[str, Any]:
    """zot's `req` (pkg/api/config's Condition documents the fields): a reference with a
    colon is a digest, any other a tag. `tls.version` stays "": Granian does not tell the
    application which version it negotiated. `claims` are a workload identity token's (as
    zot, whose other logins fill none), numbers as doubles as zot decodes them."""
    reference = facts.reference
    kind = "" if not reference else ("digest" if ":" in reference else "tag")
    return {
        "time": time,
        "method": facts.method,
        "userAgent": facts.user_agent,
        "action": subject.action,
        "repository": subject.repository,
        "reference": reference,
        "referenceType": kind,
        "tag": reference if kind == "tag" else "",
        "digest": reference if kind == "digest" else "",
        "user": {"username": subject.user or "", "groups": list(subject.groups)},
        "auth": {"anonymous": subject.user is None, "admin": subject.admin},
        "client": {"ip": facts.client_ip, "forwardedFor": list(facts.forwarded_for)},
        "tls": {"enabled": facts.tls, "version": ""},
        "claims": json_value(subject.claims),
    }


class Conditions:
    """The compiled programs of every condition in one access-control configuration."""

    def __init__(self, settings: AccessControlSettings) -> None:
        """Raises ConfigError, naming the expression's key, for one that does not compile."""
        self._env = env = environment("req")
        self._programs: dict[str, cel.Expression] = {}
        for condition in all_conditions(settings):
            if condition.expression not in self._programs:
                program = compile_expression(env, condition.expression, condition.path)
                self._programs[condition.expression] = program

    def met(self, policy: Policy, subject: Subject, facts: RequestFacts) -> tuple[bool, str]:
        """Whether every condition of `policy` holds, in order; when one does not, its
        message. A condition that fails to evaluate, or gives no boolean, does not hold
        and has no message (zot's: the client is not told about internal failures)."""
        if not policy.conditions:
            return True, ""
        if facts.oversized():
            _failed(policy.conditions[0], "X-Forwarded-For or User-Agent past what is read")
            return False, ""
        try:  # converted to CEL values once, however many conditions read it
            req = request_map(subject, facts, now())
            activation = self._env.Activation(data={"req": req})
        except Exception as exc:  # the binding raises for inputs it cannot convert
            _failed(policy.conditions[0], str(exc))
            return False, ""
        for condition in policy.conditions:
            value = self._evaluate(condition, activation)
            if value is not True:
                return False, condition.message if value is False else ""
        return True, ""

    def _evaluate(self, condition: Condition, activation: cel.Activation) -> bool | None:
        try:
            result = evaluate(self._programs[condition.expression], activation)
        except CelError as exc:
            _failed(condition, str(exc))
            return None
        kind, value = result.type().name(), result.value()
        if kind != "BOOL" or not isinstance(value, bool):
            _failed(condition, f"the result is not a boolean but {kind.lower()} {value!r}")
            return None
        if not value:
            log.debug(
                "policy condition not met",
                extra={"expression": condition.expression, "condition_message": condition.message},
            )
        return value


def all_conditions(settings: AccessControlSettings) -> Iterator[Condition]:
    for rules in settings.repositories.values():
        for policy in rules.policies:
            yield from policy.conditions
    yield from settings.admin_policy.conditions


def _failed(condition: Condition, error: str) -> None:
    log.warning(
        "policy condition failed to evaluate; the policy does not grant",
        extra={
            "expression": condition.expression,
            "condition_message": condition.message,
            "error": error,
        },
    )
