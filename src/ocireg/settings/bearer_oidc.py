"""`http.auth.bearer.oidc`: zot's workload identity, checked and typed.

A list of trusted issuers. A workload (a Kubernetes service account, a CI job) sends the ID
token its issuer gave it as `Authorization: Bearer <jwt>`; the token is verified against the
issuer's published keys, must name one of `audiences`, and `claimMapping`'s CEL expressions
turn its claims into a user name and groups for `http.accessControl`. The expressions are
compiled where the verifier is built (`ocireg.auth.claims`), so a syntax error stops
`ocireg verify` and the start, as it stops zot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocireg.errors import ConfigError
from ocireg.settings.keys import (
    Context,
    boolean,
    check_keys,
    lower_keys,
    resolve_path,
    string,
    string_list,
)

# zot's default: the issuer and the subject, so two clusters' `default/builder` differ
DEFAULT_USERNAME = "claims.iss + '/' + claims.sub"


@dataclass(frozen=True)
class ClaimVariable:
    name: str
    expression: str


@dataclass(frozen=True)
class ClaimValidation:
    expression: str  # must be true
    message: str  # why the token is refused when it is not


@dataclass(frozen=True)
class ClaimMapping:
    variables: tuple[ClaimVariable, ...] = ()
    validations: tuple[ClaimValidation, ...] = ()
    username: str = DEFAULT_USERNAME
    groups: str = ""  # none: the token gives no groups


@dataclass(frozen=True)
class OidcIssuer:
    issuer: str
    audiences: tuple[str, ...]
    claim_mapping: ClaimMapping = ClaimMapping()
    certificate_authority: str = ""  # PEM, for an issuer behind a private CA
    certificate_authority_file: Path | None = None
    skip_issuer_verification: bool = False


def parse_bearer_oidc(value: Any, where: str, ctx: Context) -> tuple[OidcIssuer, ...]:
    """The issuers of `http.auth.bearer.oidc` (a list, tried in order as zot tries them)."""
    if not isinstance(value, list):
        raise ConfigError(where, f"expected a list of issuers, got {value!r}")
    return tuple(_issuer(item, f"{where}[{i}]", ctx) for i, item in enumerate(value))


def _issuer(raw: Any, where: str, ctx: Context) -> OidcIssuer:
    section = lower_keys(raw, where)
    check_keys(
        section,
        (
            "issuer",
            "audiences",
            "claimMapping",
            "certificateAuthority",
            "certificateAuthorityFile",
            "skipIssuerVerification",
        ),
        where,
    )
    audiences = tuple(
        a.strip() for a in string_list(section.get("audiences"), f"{where}.audiences")
    )
    if not audiences:  # zot: without an audience, any token of the issuer would do
        raise ConfigError(f"{where}.audiences", "at least one audience is required")
    if not all(audiences):
        raise ConfigError(f"{where}.audiences", "an audience is empty")
    ca = string(section.get("certificateauthority"), f"{where}.certificateAuthority", False)
    ca_file = string(
        section.get("certificateauthorityfile"), f"{where}.certificateAuthorityFile", False
    )
    if ca and ca_file:
        raise ConfigError(
            where, "only one of certificateAuthority and certificateAuthorityFile may be set"
        )
    mapping = section.get("claimmapping")
    return OidcIssuer(
        issuer=string(section.get("issuer"), f"{where}.issuer"),
        audiences=audiences,
        claim_mapping=ClaimMapping() if mapping is None else _mapping(mapping, where),
        certificate_authority=ca,
        certificate_authority_file=resolve_path(ca_file, ctx.base) if ca_file else None,
        skip_issuer_verification=boolean(
            section.get("skipissuerverification", False),
            f"{where}.skipIssuerVerification",
            strings=True,
        ),
    )


def _mapping(raw: Any, parent: str) -> ClaimMapping:
    where = f"{parent}.claimMapping"
    section = lower_keys(raw, where)
    check_keys(section, ("variables", "validations", "username", "groups"), where)
    variables = _entries(section, "variables", ("name", "expression"), where)
    # zot requires a message too: it is what the refused workload is told
    validations = _entries(section, "validations", ("expression", "message"), where)
    return ClaimMapping(
        variables=tuple(ClaimVariable(*v) for v in variables),
        validations=tuple(ClaimValidation(*v) for v in validations),
        # zot: an empty username expression means the default one
        username=string(section.get("username"), f"{where}.username", False) or DEFAULT_USERNAME,
        groups=string(section.get("groups"), f"{where}.groups", False),
    )


def _entries(
    section: dict[str, Any], key: str, fields: tuple[str, str], where: str
) -> list[tuple[str, str]]:
    """The list `key` of maps with exactly these two string `fields`, as pairs."""
    value = section.get(key.lower())
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}", f"expected a list, got {value!r}")
    pairs = []
    for i, item in enumerate(value):
        at = f"{where}.{key}[{i}]"
        entry = lower_keys(item, at)
        check_keys(entry, fields, at)
        first, second = (string(entry.get(f.lower()), f"{at}.{f}") for f in fields)
        pairs.append((first, second))
    return pairs
