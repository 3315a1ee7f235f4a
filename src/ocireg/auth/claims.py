"""zot's `claimMapping` for workload identity: CEL expressions over a verified token's
claims that make the variables, the validations, the user name and the groups.

The expressions see `claims` (the token's claims, numbers as doubles as zot decodes them)
and `vars` (the variables made so far, in their order), both declared as zot declares them
(a JSON object: a map of string to dyn). They are compiled with the policy conditions'
engine (auth/celenv.py: cel-expr-python, zot's checker and extensions) once, when the
verifier is built: `ocireg verify` and the start refuse what zot refuses, naming the key,
and a validation must be typed as a boolean there (`claims.email_verified == true`, not
`claims.email_verified`), as zot demands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ocireg.auth.celenv import (
    CelError,
    compile_expression,
    environment,
    evaluate,
    json_value,
    returns_bool,
    to_cel,
)
from ocireg.errors import ConfigError
from ocireg.settings.bearer_oidc import ClaimMapping

if TYPE_CHECKING:
    from cel_expr_python import cel


class ClaimsRefused(Exception):
    """The claims fail a validation, or an expression cannot be evaluated on them (a
    claim it reads is missing, a value of the wrong type): the token does not log in."""


class _Expression:
    def __init__(self, env: cel.Env, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.program = compile_expression(env, text, where)

    def evaluate(self, data: Mapping[str, Any]) -> cel.Value:
        try:
            return evaluate(self.program, data)
        except CelError as exc:
            raise ClaimsRefused(f"{self.text!r}: {exc}") from None


class ClaimMapper:
    def __init__(self, mapping: ClaimMapping, where: str) -> None:
        """Compile `mapping`; ConfigError (naming the key under `where`) when an expression
        does not compile, or a validation is not typed as a boolean."""
        env = environment("claims", "vars")
        at = f"{where}.claimMapping"
        self.variables = [
            (v.name, _Expression(env, v.expression, f"{at}.variables[{i}].expression"))
            for i, v in enumerate(mapping.variables)
        ]
        self.validations = []
        for i, v in enumerate(mapping.validations):
            expression = _Expression(env, v.expression, f"{at}.validations[{i}].expression")
            if not returns_bool(expression.program):
                kind = expression.program.return_type().name()
                raise ConfigError(
                    expression.where,
                    f"invalid CEL expression: a validation must give a bool, not {kind.lower()}",
                )
            self.validations.append((expression, v.message))
        self.username = _Expression(env, mapping.username, f"{at}.username")
        self.groups = _Expression(env, mapping.groups, f"{at}.groups") if mapping.groups else None

    def map(self, claims: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The user name and groups the claims give; ClaimsRefused when they give none."""
        variables: dict[str, Any] = {}
        try:
            data = {"claims": json_value(claims), "vars": variables}
        except (
            OverflowError,
            RecursionError,
        ) as exc:  # past a double, or nested past Python's depth
            raise ClaimsRefused(f"claims CEL cannot take: {exc}") from None
        for name, expression in self.variables:
            variables[name] = to_cel(expression.evaluate(data).plain_value())
        for expression, message in self.validations:
            if expression.evaluate(data).value() is not True:
                raise ClaimsRefused(message)
        user = self.username.evaluate(data).value()
        if not isinstance(user, str):
            raise ClaimsRefused(f"the username expression gives {type(user).__name__}")
        if not user:
            raise ClaimsRefused("the username expression gives an empty name")
        groups: tuple[str, ...] = ()
        if self.groups is not None:
            value = self.groups.evaluate(data).plain_value()
            if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
                raise ClaimsRefused("the groups expression does not give a list of strings")
            groups = tuple(value)
        return user, groups
