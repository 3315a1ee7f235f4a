"""`http.auth` and `http.accessControl`: zot's keys, checked and typed.

The core config keeps both sections as free-form maps; this module owns their meaning.
As zot does (viper), every map key is matched case-insensitively at every depth, and the
keys of data maps (repository globs, group names) are lower-cased too, so a glob written
`Team/*` matches what zot would match. Errors are `ConfigError`s naming the key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocireg.auth.glob import GlobError, compile_glob
from ocireg.config import Config
from ocireg.errors import ConfigError

ACTIONS = ("read", "create", "update", "delete")
# zot keys that ocireg accepts and ignores with a warning (not implemented).
_AUTH_UNIMPLEMENTED = (
    "ldap",
    "openid",
    "apikey",
    "sessionkeysfile",
    "sessionhashkey",
    "sessionencryptkey",
    "sessiondriver",
    "securesession",
    "mtls",
)
_BEARER_UNIMPLEMENTED = ("upstreamtokenendpoint", "oidc", "awssecretsmanager")


@dataclass(frozen=True)
class BearerSettings:
    realm: str
    service: str
    cert: Path


@dataclass(frozen=True)
class Policy:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RepositoryRules:
    policies: tuple[Policy, ...] = ()
    default_policy: frozenset[str] = frozenset()
    anonymous_policy: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccessControlSettings:
    repositories: dict[str, RepositoryRules] = field(default_factory=dict)
    admin_policy: Policy = Policy()
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # group -> users
    metrics_users: frozenset[str] = frozenset()
    metrics_anonymous: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AuthSettings:
    realm: str
    fail_delay: float = 0.0
    htpasswd: Path | None = None
    bearer: BearerSettings | None = None
    access_control: AccessControlSettings | None = None
    warnings: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return (
            self.htpasswd is not None or self.bearer is not None or self.access_control is not None
        )


def auth_settings(config: Config) -> AuthSettings:
    """The typed auth sections of `config` (files are not read here; see `ocireg.auth.check`)."""
    warnings: list[str] = []
    auth = _lower(config.http.auth or {}, "http.auth")
    realm = config.http.realm
    fail_delay = 0.0
    htpasswd: Path | None = None
    bearer: BearerSettings | None = None
    base = Path.cwd()  # relative paths are relative to the working directory, as in zot
    for key, value in auth.items():
        where = f"http.auth.{key}"
        if key == "faildelay":
            fail_delay = _number(value, where)
        elif key == "htpasswd":
            section = _map(value, where)
            _only(section, ("path",), where)
            htpasswd = _path(_string(section.get("path"), f"{where}.path"), base)
        elif key == "bearer":
            bearer = _bearer(_map(value, where), where, base, warnings)
        elif key in _AUTH_UNIMPLEMENTED:
            warnings.append(where)
        else:
            raise ConfigError(where, _unknown(("failDelay", "htpasswd", "bearer")))
    access = config.http.access_control
    return AuthSettings(
        realm=realm,
        fail_delay=fail_delay,
        htpasswd=htpasswd,
        bearer=bearer,
        access_control=None if access is None else _access_control(access),
        warnings=tuple(warnings),
    )


def _bearer(raw: dict[str, Any], where: str, base: Path, warnings: list[str]) -> BearerSettings:
    for key in raw:
        if key in _BEARER_UNIMPLEMENTED:
            warnings.append(f"{where}.{key}")
        elif key not in ("realm", "service", "cert"):
            raise ConfigError(f"{where}.{key}", _unknown(("realm", "service", "cert")))
    return BearerSettings(
        realm=_string(raw.get("realm"), f"{where}.realm"),
        service=_string(raw.get("service", ""), f"{where}.service", required=False),
        cert=_path(_string(raw.get("cert"), f"{where}.cert"), base),
    )


def _access_control(raw: dict[str, Any]) -> AccessControlSettings:
    where = "http.accessControl"
    ac = _lower(raw, where)
    known = ("repositories", "adminPolicy", "groups", "metrics")
    _only(ac, tuple(k.lower() for k in known), where, shown=known)
    repositories: dict[str, RepositoryRules] = {}
    for glob, rules in _map(ac.get("repositories", {}), f"{where}.repositories").items():
        path = f"{where}.repositories.{glob}"
        try:
            compile_glob(glob)
        except GlobError as exc:
            raise ConfigError(path, f"invalid repository glob: {exc}") from None
        repositories[glob] = _rules(_map(rules, path), path)
    groups: dict[str, frozenset[str]] = {}
    for name, group in _map(ac.get("groups", {}), f"{where}.groups").items():
        path = f"{where}.groups.{name}"
        section = _map(group, path)
        _only(section, ("users",), path)
        groups[name] = _strings(section.get("users", []), f"{path}.users")
    metrics = _map(ac.get("metrics", {}), f"{where}.metrics")
    _only(metrics, ("users", "anonymouspolicy"), f"{where}.metrics", ("users", "anonymousPolicy"))
    admin = ac.get("adminpolicy")
    return AccessControlSettings(
        repositories=repositories,
        admin_policy=Policy() if admin is None else _policy(admin, f"{where}.adminPolicy"),
        groups=groups,
        metrics_users=_strings(metrics.get("users", []), f"{where}.metrics.users"),
        metrics_anonymous=_actions(
            metrics.get("anonymouspolicy", []), f"{where}.metrics.anonymousPolicy"
        ),
    )


def _rules(raw: dict[str, Any], where: str) -> RepositoryRules:
    known = ("policies", "defaultPolicy", "anonymousPolicy")
    _only(raw, tuple(k.lower() for k in known), where, shown=known)
    policies = raw.get("policies") or []
    if not isinstance(policies, list):
        raise ConfigError(f"{where}.policies", f"expected a list, got {policies!r}")
    return RepositoryRules(
        policies=tuple(_policy(p, f"{where}.policies[{i}]") for i, p in enumerate(policies)),
        default_policy=_actions(raw.get("defaultpolicy", []), f"{where}.defaultPolicy"),
        anonymous_policy=_actions(raw.get("anonymouspolicy", []), f"{where}.anonymousPolicy"),
    )


def _policy(raw: Any, where: str) -> Policy:
    section = _map(raw, where)
    for key in section:
        if key == "conditions":  # zot's CEL conditions: refusing is safer than ignoring
            raise ConfigError(f"{where}.conditions", "policy conditions are not supported")
        if key not in ("users", "groups", "actions"):
            raise ConfigError(f"{where}.{key}", _unknown(("users", "groups", "actions")))
    return Policy(
        users=_strings(section.get("users", []), f"{where}.users"),
        # Group names are map keys, which zot lower-cases; compare them the same way here.
        groups=frozenset(g.lower() for g in _strings(section.get("groups", []), f"{where}.groups")),
        actions=_actions(section.get("actions", []), f"{where}.actions"),
    )


# --- small validators ------------------------------------------------------------------------


def _lower(node: Any, where: str) -> Any:
    """zot (viper) lower-cases every map key at every depth, lists included."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            low = str(key).lower()
            if low in out:
                raise ConfigError(f"{where}.{key}", "duplicate key (keys are case-insensitive)")
            out[low] = _lower(value, f"{where}.{key}")
        return out
    if isinstance(node, list):
        return [_lower(v, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def _map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(where, f"expected a map, got {type(value).__name__} {value!r}")
    return _lower(value, where)  # type: ignore[no-any-return]


def _only(
    raw: dict[str, Any], known: tuple[str, ...], where: str, shown: tuple[str, ...] = ()
) -> None:
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}.{key}", _unknown(shown or known))


def _unknown(known: tuple[str, ...]) -> str:
    return f"unknown key (known here: {', '.join(known)})"


def _string(value: Any, where: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ConfigError(where, f"expected a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(where, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def _strings(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, f"expected a list of strings, got {value!r}")
    return frozenset(value)


def _actions(value: Any, where: str) -> frozenset[str]:
    actions = _strings(value, where)
    for action in actions:
        if action not in ACTIONS:
            raise ConfigError(where, f"unknown action {action!r} (expected {', '.join(ACTIONS)})")
    return actions


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
