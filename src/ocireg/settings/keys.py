"""The helpers every configuration parser uses: one of each.

zot reads its file through viper, which matches keys case-insensitively at every depth; a
key nobody knows is an error, a zot key that ocireg does not implement is a warning. Every
error is a `ConfigError` naming the key path (`http.auth.htpasswd.path`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocireg.errors import ConfigError


@dataclass
class Context:
    """What a section parser is given: the file with the core schema's canonical key
    names (the free-form sections inside it as written), the directory relative paths
    start from, the list that collects the keys accepted but not implemented, and the one
    that collects other things worth a warning."""

    data: dict[str, Any]
    base: Path = field(default_factory=Path.cwd)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # sentences worth a warning

    def get(self, path: str) -> Any:
        """The value at a dotted canonical path (`http.auth`), None when absent."""
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def has(self, path: str) -> bool:
        parent, _, last = path.rpartition(".")
        node = self.get(parent) if parent else self.data
        return isinstance(node, dict) and last in node


def join(where: str, key: object) -> str:
    """The key path of `key` under `where` (`where` may be the top level, "")."""
    return f"{where}.{key}" if where else str(key)


def lower_keys(node: Any, where: str, deep: bool = False) -> dict[str, Any]:
    """`node` as a map with lower-cased keys; `deep` lowers maps inside it too (lists
    included), as viper does for sections whose keys are data (repository globs)."""
    if not isinstance(node, dict):
        raise ConfigError(where, f"expected a map, got {type(node).__name__} {node!r}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        low = str(key).lower()
        if low in out:
            raise ConfigError(join(where, key), "duplicate key (keys are case-insensitive)")
        out[low] = _lower_deep(value, join(where, key)) if deep else value
    return out


def _lower_deep(node: Any, where: str) -> Any:
    if isinstance(node, dict):
        return lower_keys(node, where, deep=True)
    if isinstance(node, list):
        return [_lower_deep(v, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def check_keys(
    raw: dict[str, Any],
    known: Iterable[str],
    where: str,
    unimplemented: Iterable[str] = (),
    warnings: list[str] | None = None,
) -> None:
    """Every key of `raw` (lower-cased) is one of `known` (spelled as documented, matched
    case-insensitively); a key in `unimplemented` is recorded in `warnings` instead, spelled
    as documented."""
    shown = tuple(known)
    allowed = {k.lower() for k in shown}
    skipped = {k.lower(): k for k in unimplemented}
    for key in raw:
        if key in allowed:
            continue
        if key in skipped and warnings is not None:
            warnings.append(join(where, skipped[key]))
            continue
        raise ConfigError(join(where, key), f"unknown key (known here: {', '.join(shown)})")


def canonical_keys(
    raw: Any,
    known: Iterable[str],
    where: str,
    unimplemented: Iterable[str] = (),
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The map `raw` with its keys spelled as in `known`, checked as `check_keys` does; the
    unimplemented keys are left out."""
    shown = tuple(known)
    low = lower_keys(raw, where)
    check_keys(low, shown, where, unimplemented, [] if warnings is None else warnings)
    spelled = {k.lower(): k for k in shown}
    return {spelled[key]: value for key, value in low.items() if key in spelled}


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: Any, where: str, bare_unit: float | None = None) -> float:
    """A Go duration ("1h", "90m", "1h30m0s", "500ms") in seconds. A bare number is
    nanoseconds, as Go reads an integer duration, unless `bare_unit` (seconds per unit)
    says otherwise; with `bare_unit` a numeric string is accepted too."""
    expected = f"expected a duration like '1h' or '30m', got {value!r}"
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(where, expected)  # YAML's .inf and .nan are floats too
    if isinstance(value, int | float):
        return float(value) * (1e-9 if bare_unit is None else bare_unit)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    if bare_unit is not None and _PLAIN_NUMBER.fullmatch(text):
        return float(text) * bare_unit
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(where, expected)
    return total


def duration(value: Any, where: str) -> float:
    """A Go duration that must not be negative."""
    result = parse_duration(value, where)
    if result < 0:
        raise ConfigError(where, f"expected a non-negative duration, got {value!r}")
    return result


def resolve_path(value: str, base: Path) -> Path:
    """A path from the file: `~` expanded, relative to `base` (the working directory, as
    zot reads them)."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def boolean(value: Any, where: str, strings: bool = False) -> bool:
    """true or false; with `strings`, also the text forms Go's ParseBool accepts."""
    if strings and isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "t", "true", "yes"):
            return True
        if text in ("0", "f", "false", "no"):
            return False
    if not isinstance(value, bool):
        raise ConfigError(where, f"expected true or false, got {value!r}")
    return value


def string(value: Any, where: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ConfigError(where, f"expected a non-empty string, got {value!r}")
    return value


def strings(value: Any, where: str) -> frozenset[str]:
    return frozenset(string_list(value, where))


def string_list(value: Any, where: str) -> tuple[str, ...]:
    """A list of strings, in its order."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, f"expected a list of strings, got {value!r}")
    return tuple(value)


def seconds(value: Any, where: str) -> float:
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not finite or value < 0:
        raise ConfigError(where, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def integer(value: Any, where: str) -> int:
    """An integer, or a string of one (zot casts both)."""
    if isinstance(value, bool):
        raise ConfigError(where, f"expected an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: YAML's .inf
        raise ConfigError(where, f"expected an integer, got {value!r}") from None
