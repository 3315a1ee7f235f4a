"""zot's `claimMapping` for workload identity: CEL expressions over a verified token's
claims that make the variables, the validations, the user name and the groups.

The expressions see `claims` (the token's claims, JSON as CEL values) and `vars` (the
variables made so far, in their order), as zot's do. CEL comes from cel-python (celpy): a
parser and evaluator of the standard language (macros `has`, `all`, `exists`, `map`,
`filter`; `in`, `size`, `startsWith`, `endsWith`, `contains`, `matches`, ...). zot also
loads cel-go's string extension; its commonly used functions are given here (`split`,
`join`, `lowerAscii`, `upperAscii`, `replace`, `trim`, `substring`, `indexOf`), the sets
and encoders extensions are not.

celpy is imported only where `http.auth.bearer.oidc` is configured (it costs a worker some
150 ms to import); expressions are compiled once, when the verifier is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from ocireg.errors import ConfigError
from ocireg.settings.bearer_oidc import ClaimMapping


class ClaimsRefused(Exception):
    """The claims fail a validation, or an expression cannot be evaluated on them (a
    claim it reads is missing, a value of the wrong type): the token does not log in."""


def _split(text: Any, sep: Any, limit: Any = None) -> celtypes.ListType:
    parts = str(text).split(str(sep)) if limit is None else _split_n(str(text), str(sep), limit)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _split_n(text: str, sep: str, limit: Any) -> list[str]:
    n = int(limit)  # cel-go: 0 gives no parts, a negative number all of them
    return [] if n == 0 else text.split(sep) if n < 0 else text.split(sep, n - 1)


def _join(items: Any, sep: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(sep).join(str(i) for i in items))


def _substring(text: Any, start: Any, end: Any = None) -> celtypes.StringType:
    s = str(text)
    return celtypes.StringType(s[int(start) :] if end is None else s[int(start) : int(end)])


_STRINGS: dict[str, Callable[..., Any]] = {
    "split": _split,
    "join": _join,
    "lowerAscii": lambda s: celtypes.StringType(str(s).lower()),
    "upperAscii": lambda s: celtypes.StringType(str(s).upper()),
    "replace": lambda s, old, new: celtypes.StringType(str(s).replace(str(old), str(new))),
    "trim": lambda s: celtypes.StringType(str(s).strip()),
    "substring": _substring,
    "indexOf": lambda s, sub: celtypes.IntType(str(s).find(str(sub))),
}


class _Expression:
    def __init__(self, env: celpy.Environment, text: str, where: str) -> None:
        self.text = text
        try:
            self.program = env.program(env.compile(text), functions=_STRINGS)
        except Exception as exc:  # celpy's parse errors have no common base but Exception
            raise ConfigError(where, f"invalid CEL expression {text!r}: {exc}") from None

    def evaluate(self, activation: dict[str, Any]) -> Any:
        try:
            value = self.program.evaluate(activation)
        except CELEvalError as exc:
            raise ClaimsRefused(f"{self.text!r}: {exc.args[0] if exc.args else exc}") from None
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:  # an extension's
            raise ClaimsRefused(f"{self.text!r}: {exc}") from None
        if isinstance(value, CELEvalError):
            raise ClaimsRefused(f"{self.text!r}: {value.args[0] if value.args else value}")
        return value


class ClaimMapper:
    def __init__(self, mapping: ClaimMapping, where: str) -> None:
        """Compile `mapping`; ConfigError (naming the key under `where`) when an expression
        does not parse."""
        env = celpy.Environment()
        at = f"{where}.claimMapping"
        self.variables = [
            (v.name, _Expression(env, v.expression, f"{at}.variables[{i}].expression"))
            for i, v in enumerate(mapping.variables)
        ]
        self.validations = [
            (_Expression(env, v.expression, f"{at}.validations[{i}].expression"), v.message)
            for i, v in enumerate(mapping.validations)
        ]
        self.username = _Expression(env, mapping.username, f"{at}.username")
        self.groups = _Expression(env, mapping.groups, f"{at}.groups") if mapping.groups else None

    def map(self, claims: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The user name and groups the claims give; ClaimsRefused when they give none."""
        variables = celtypes.MapType({})
        activation = {"claims": json_to_cel(claims), "vars": variables}
        for name, expression in self.variables:
            variables[celtypes.StringType(name)] = expression.evaluate(activation)
        for expression, message in self.validations:
            passed = expression.evaluate(activation)
            if not isinstance(passed, celtypes.BoolType):
                raise ClaimsRefused(f"validation {expression.text!r} is not a boolean")
            if not passed:
                raise ClaimsRefused(message)
        user = self.username.evaluate(activation)
        if not isinstance(user, str):
            raise ClaimsRefused(f"the username expression gives {type(user).__name__}")
        if not user:
            raise ClaimsRefused("the username expression gives an empty name")
        groups: tuple[str, ...] = ()
        if self.groups is not None:
            value = self.groups.evaluate(activation)
            if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
                raise ClaimsRefused("the groups expression does not give a list of strings")
            groups = tuple(str(g) for g in value)
        return str(user), groups
