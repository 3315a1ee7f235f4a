"""The one CEL engine of ocireg, for both places zot takes CEL: policy `conditions`
(auth/conditions.py) and workload identity's `claimMapping` (auth/claims.py).

The engine is cel-expr-python, Google's binding of cel-cpp: the same checker and standard
library as zot's cel-go, with the extensions zot loads (strings, sets, encoders, optional
types). Expressions are compiled (parsed and type-checked) once, when the configuration is
read, so what zot refuses at load is refused here at load too; at run time an evaluation
that fails is one exception, `CelError`.

The binding and protobuf are imported when an environment is made (or a timestamp handed
over): only where a configuration has CEL in it.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ocireg.errors import ConfigError

if TYPE_CHECKING:
    from cel_expr_python import cel


class CelError(Exception):
    """An expression that could not be evaluated on its input: a missing key, a value of
    the wrong type, an input the binding cannot take..."""


def environment(*variables: str) -> cel.Env:
    """zot's CEL environment with each of `variables` a map of string to dyn (zot declares
    `req` so, and `claims` and `vars` as google.protobuf.Struct, which CEL checks as that)."""
    from cel_expr_python import cel
    from cel_expr_python.ext import ext_encoders, ext_optional, ext_strings

    # The sets extension is reachable through the environment's configuration only.
    config = cel.NewEnvConfigFromYaml("name: ocireg\nextensions:\n  - name: sets\n")
    json_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    return cel.NewEnv(
        config=config,
        variables=dict.fromkeys(variables, json_map),
        extensions=[
            ext_strings.ExtStrings(),
            ext_optional.ExtOptional(),
            ext_encoders.ExtEncoders(),
        ],
    )


def compile_expression(env: cel.Env, text: str, where: str) -> cel.Expression:
    """`text` parsed and type-checked; ConfigError at `where` (the expression's key path)
    with the checker's message when it is refused."""
    try:
        return env.compile(text)
    except RuntimeError as exc:  # the binding's only error for a refused expression
        raise ConfigError(where, f"invalid CEL expression: {_clean(exc)}") from None


def returns_bool(program: cel.Expression) -> bool:
    """Whether the checker proved the expression gives a boolean (not `dyn`)."""
    from cel_expr_python import cel

    return bool(program.return_type() == cel.Type.BOOL)


def evaluate(program: cel.Expression, data: Mapping[str, Any] | cel.Activation) -> cel.Value:
    """The program's value on `data` (variables as `to_cel` gives them, or an activation
    made of them); CelError when it has none."""
    try:
        result = program.eval(data=data) if isinstance(data, Mapping) else program.eval(data)
        kind = result.type().name()
    except Exception as exc:  # the binding raises for inputs it cannot convert
        raise CelError(str(exc)) from None
    if kind == "ERROR":  # a missing key, an index out of range, a failed conversion...
        raise CelError(str(result.value()))
    return result


def to_cel(value: Any) -> Any:
    """A Python value as the binding takes it inside a map or a list: a datetime as a
    protobuf Timestamp and a timedelta as a Duration (it takes neither there), a tuple as a
    list; everything else as it is."""
    if isinstance(value, dict):
        return {k: to_cel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_cel(v) for v in value]
    if isinstance(value, datetime.datetime):
        from google.protobuf import timestamp_pb2

        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(value)
        return stamp
    if isinstance(value, datetime.timedelta):
        from google.protobuf import duration_pb2

        duration = duration_pb2.Duration()
        duration.FromTimedelta(value)
        return duration
    return value


def now() -> Any:
    """The current time as the binding takes a timestamp inside a map."""
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


def json_value(value: Any) -> Any:
    """A decoded JSON value as zot's CEL sees it: every number a double (Go's JSON decoder
    gives zot's claims as float64, and CEL's JSON type has only doubles), so `claims.exp +
    1` fails as at zot and `claims.exp > 1700000000` holds alike."""
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _clean(exc: Exception) -> str:
    """cel-cpp's status text without its status-code wrapping."""
    text = str(exc).removeprefix("INVALID_ARGUMENT: ").strip()
    return text.removesuffix("[INVALID_ARGUMENT]").rstrip()
