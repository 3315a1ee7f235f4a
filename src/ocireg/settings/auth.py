"""`http.auth` and `http.accessControl`: zot's keys, checked and typed.

As zot does (viper), every map key is matched case-insensitively at every depth, and the
keys of data maps (repository globs, group names) are lower-cased too, so a glob written
`Team/*` matches what zot would match. Files are not read here; `ocireg.auth.core.check_auth`
reads them for `ocireg verify` and at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocireg.errors import ConfigError
from ocireg.globs import GlobError, compile_glob
from ocireg.settings.bearer_oidc import OidcIssuer, parse_bearer_oidc
from ocireg.settings.keys import (
    Context,
    boolean,
    check_keys,
    integer,
    lower_keys,
    resolve_path,
    seconds,
    string,
    strings,
)
from ocireg.settings.openid import OpenIdSettings, parse_openid

ACTIONS = ("read", "create", "update", "delete")
# zot keys that ocireg accepts and ignores with a warning (not implemented).
_AUTH_UNIMPLEMENTED = ("mtls",)
# zot's session keys: not needed. ocireg derives its own keys (ocireg.ui.session), so every
# worker and cluster member takes a session another made, with nothing stored (zot's
# sessionDriver shares sessions through Redis for that), and a logout is noted in the
# metadata store; cookies are Secure whenever ocireg serves HTTPS.
_SESSION_KEYS = (
    "sessionKeysFile",
    "sessionHashKey",
    "sessionEncryptKey",
    "sessionDriver",
    "secureSession",
)
_SESSION_KEYS_NOTE = " (not needed: ocireg's sessions are signed cookies every member accepts)"
_BEARER_UNIMPLEMENTED = ("upstreamtokenendpoint", "awssecretsmanager")


@dataclass(frozen=True)
class BearerSettings:
    """Bearer tokens of two kinds, tried as zot tries them: the ID tokens of the `oidc`
    issuers (workload identity; `http.accessControl` decides), then the token server's,
    verified with `cert` (their `access` claim decides). At least one of the two."""

    realm: str  # the challenge's; required with `cert` (clients fetch tokens there)
    service: str
    cert: Path | None = None
    oidc: tuple[OidcIssuer, ...] = ()


@dataclass(frozen=True)
class LdapSettings:
    """zot's `http.auth.ldap`: users found under `base_dn` by `user_attribute` (and
    `user_filter`), their password checked by binding as them; `user_group_attribute`'s
    values are their groups. The service account's DN and password come from
    `credentials_file` (zot's: a JSON map with bindDN and bindPassword); without one the
    search binds anonymously."""

    address: str
    port: int
    base_dn: str
    user_attribute: str
    insecure: bool = False  # zot's: plain LDAP (with start_tls: upgraded); else LDAPS
    start_tls: bool = False
    skip_verify: bool = False
    subtree_search: bool = False
    user_group_attribute: str = ""
    user_filter: str = ""
    ca_cert: Path | None = None
    credentials_file: Path | None = None

    @property
    def uses_ldaps(self) -> bool:
        return not self.insecure


@dataclass(frozen=True)
class Condition:
    """zot's policy condition: a CEL expression that must hold for the policy to grant, and
    the message a refused client is told when it does not. Compiled by `ocireg.auth`
    (`auth/conditions.py`), not here: this stays plain data, comparable across reloads."""

    expression: str
    message: str = ""
    path: str = ""  # the key path, for the errors of the compiler


@dataclass(frozen=True)
class Policy:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    conditions: tuple[Condition, ...] = ()


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
    realm: str = "ocireg"
    fail_delay: float = 0.0
    htpasswd: Path | None = None
    ldap: LdapSettings | None = None
    bearer: BearerSettings | None = None
    access_control: AccessControlSettings | None = None
    # zot's `apikey`: users who log in with a password may make keys to log in with instead
    apikey: bool = False
    openid: OpenIdSettings | None = None

    @property
    def api_keys(self) -> bool:
        """Whether API keys are on: only with logins to make them with (bearer users
        cannot, here)."""
        return self.apikey and (self.logins or self.openid is not None)

    @property
    def enabled(self) -> bool:
        return (
            self.logins
            or self.bearer is not None
            or self.access_control is not None
            or self.openid is not None
        )

    @property
    def logins(self) -> bool:
        """Whether Basic credentials are checked here (htpasswd or LDAP)."""
        return self.htpasswd is not None or self.ldap is not None


def parse_auth(ctx: Context) -> AuthSettings:
    """`http.auth` and `http.accessControl` (with `http.realm` for the Basic challenge)."""
    auth = _map(ctx.get("http.auth") or {}, "http.auth")
    fail_delay = 0.0
    htpasswd: Path | None = None
    ldap: LdapSettings | None = None
    bearer: BearerSettings | None = None
    apikey = False
    openid: OpenIdSettings | None = None
    skipped: list[str] = []
    check_keys(
        auth,
        ("failDelay", "htpasswd", "ldap", "bearer", "apikey", "openid"),
        "http.auth",
        (*_AUTH_UNIMPLEMENTED, *_SESSION_KEYS),
        skipped,
    )
    sessions = {f"http.auth.{key}" for key in _SESSION_KEYS}
    ctx.warnings.extend(w + _SESSION_KEYS_NOTE if w in sessions else w for w in skipped)
    for key, value in auth.items():
        where = f"http.auth.{key}"
        if key == "faildelay":
            fail_delay = seconds(value, "http.auth.failDelay")
        elif key == "htpasswd":
            section = _map(value, where)
            check_keys(section, ("path",), where)
            htpasswd = resolve_path(string(section.get("path"), f"{where}.path"), ctx.base)
        elif key == "ldap":
            ldap = _ldap(_map(value, where), where, ctx)
        elif key == "bearer":
            bearer = _bearer(_map(value, where), where, ctx)
        elif key == "apikey":
            apikey = boolean(value, "http.auth.apikey", strings=True)
        elif key == "openid":
            openid = parse_openid(value, ctx)
    if openid is not None and bearer is not None:
        # zot then authenticates by bearer tokens alone and never routes the logins
        ctx.notices.append("http.auth.openid: ignored with http.auth.bearer (as zot does)")
        openid = None
    access = ctx.get("http.accessControl")
    settings = AuthSettings(
        realm=ctx.get("http.realm") or "ocireg",
        fail_delay=fail_delay,
        htpasswd=htpasswd,
        ldap=ldap,
        bearer=bearer,
        access_control=None if access is None else _access_control(access),
        apikey=apikey,
        openid=openid,
    )
    if settings.apikey and not settings.api_keys:
        ctx.warnings.append(
            "http.auth.apikey: no effect without htpasswd, ldap or openid (keys are made by"
            " users who log in)"
        )
    return settings


def _bearer(raw: dict[str, Any], where: str, ctx: Context) -> BearerSettings:
    check_keys(
        raw, ("realm", "service", "cert", "oidc"), where, _BEARER_UNIMPLEMENTED, ctx.warnings
    )
    oidc = parse_bearer_oidc(raw["oidc"], f"{where}.oidc", ctx) if "oidc" in raw else ()
    cert = string(raw.get("cert"), f"{where}.cert", required=False)
    if not cert and not oidc:
        # zot may verify tokens by a secrets manager instead; ocireg has only these two
        raise ConfigError(
            f"{where}.cert",
            "required without oidc: bearer tokens are verified with this certificate"
            " (awsSecretsManager is not implemented)",
        )
    return BearerSettings(
        # the token server's clients must be told where it is; workloads bring their token
        realm=string(raw.get("realm"), f"{where}.realm", required=bool(cert)),
        service=string(raw.get("service", ""), f"{where}.service", required=False),
        cert=resolve_path(cert, ctx.base) if cert else None,
        oidc=oidc,
    )


def _ldap(raw: dict[str, Any], where: str, ctx: Context) -> LdapSettings:
    check_keys(
        raw,
        (
            "address",
            "port",
            "baseDN",
            "userAttribute",
            "userGroupAttribute",
            "userFilter",
            "credentialsFile",
            "insecure",
            "startTLS",
            "skipVerify",
            "subtreeSearch",
            "caCert",
        ),
        where,
    )

    def flag(key: str) -> bool:  # zot reads "true" as true too
        return boolean(raw.get(key.lower(), False), f"{where}.{key}", strings=True)

    insecure = flag("insecure")
    port = raw.get("port")
    ca_cert = string(raw.get("cacert"), f"{where}.caCert", required=False)
    credentials = string(raw.get("credentialsfile"), f"{where}.credentialsFile", required=False)
    return LdapSettings(
        address=string(raw.get("address"), f"{where}.address"),
        # zot dials the port it is given; without one, the protocol's own
        port=integer(port, f"{where}.port") if port else (389 if insecure else 636),
        base_dn=string(raw.get("basedn"), f"{where}.baseDN"),
        user_attribute=string(raw.get("userattribute"), f"{where}.userAttribute"),
        insecure=insecure,
        start_tls=boolean(raw.get("starttls", False), f"{where}.startTLS", strings=True),
        skip_verify=boolean(raw.get("skipverify", False), f"{where}.skipVerify", strings=True),
        subtree_search=boolean(
            raw.get("subtreesearch", False), f"{where}.subtreeSearch", strings=True
        ),
        user_group_attribute=string(
            raw.get("usergroupattribute"), f"{where}.userGroupAttribute", required=False
        ),
        user_filter=string(raw.get("userfilter"), f"{where}.userFilter", required=False),
        ca_cert=resolve_path(ca_cert, ctx.base) if ca_cert else None,
        credentials_file=resolve_path(credentials, ctx.base) if credentials else None,
    )


def _access_control(raw: Any) -> AccessControlSettings:
    where = "http.accessControl"
    ac = _map(raw, where)
    check_keys(ac, ("repositories", "adminPolicy", "groups", "metrics"), where)
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
        check_keys(section, ("users",), path)
        groups[name] = strings(section.get("users", []), f"{path}.users")
    metrics = _map(ac.get("metrics", {}), f"{where}.metrics")
    check_keys(metrics, ("users", "anonymousPolicy"), f"{where}.metrics")
    admin = ac.get("adminpolicy")
    return AccessControlSettings(
        repositories=repositories,
        admin_policy=Policy() if admin is None else _policy(admin, f"{where}.adminPolicy"),
        groups=groups,
        metrics_users=strings(metrics.get("users", []), f"{where}.metrics.users"),
        metrics_anonymous=_actions(
            metrics.get("anonymouspolicy", []), f"{where}.metrics.anonymousPolicy"
        ),
    )


def _rules(raw: dict[str, Any], where: str) -> RepositoryRules:
    check_keys(raw, ("policies", "defaultPolicy", "anonymousPolicy"), where)
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
    check_keys(section, ("users", "groups", "actions", "conditions"), where)
    return Policy(
        users=strings(section.get("users", []), f"{where}.users"),
        # Group names are map keys, which zot lower-cases; compare them the same way here.
        groups=frozenset(g.lower() for g in strings(section.get("groups", []), f"{where}.groups")),
        actions=_actions(section.get("actions", []), f"{where}.actions"),
        conditions=_conditions(section.get("conditions") or [], f"{where}.conditions"),
    )


def _conditions(raw: Any, where: str) -> tuple[Condition, ...]:
    if not isinstance(raw, list):
        raise ConfigError(where, f"expected a list, got {raw!r}")
    conditions = []
    for i, item in enumerate(raw):
        path = f"{where}[{i}]"
        section = _map(item, path)
        check_keys(section, ("expression", "message"), path)
        message = string(section.get("message", ""), f"{path}.message", required=False)
        conditions.append(
            Condition(
                expression=string(section.get("expression"), f"{path}.expression"),
                message=message,
                path=f"{path}.expression",
            )
        )
    return tuple(conditions)


def _map(value: Any, where: str) -> dict[str, Any]:
    # zot (viper) lower-cases every map key at every depth, lists included.
    return lower_keys(value, where, deep=True)


def _actions(value: Any, where: str) -> frozenset[str]:
    actions = strings(value, where)
    for action in actions:
        if action not in ACTIONS:
            raise ConfigError(where, f"unknown action {action!r} (expected {', '.join(ACTIONS)})")
    return actions
