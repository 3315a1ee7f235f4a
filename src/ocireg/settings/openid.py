"""`http.auth.openid`: zot's OpenID Connect logins, checked and typed.

zot knows four provider names: `oidc`, `google` and `gitlab` speak OpenID Connect (found
from their `issuer`), `github` plain OAuth2 with GitHub's own API. Here the three OpenID
Connect ones are implemented alike; `github` (and a `keypath`, zot's private-key client
authentication) is accepted with a warning and left out. Any other name zot ignores: so
does ocireg, with a warning. The credentials file (zot's: a JSON map with clientid and
clientsecret) is read where the logins are built (`ocireg.auth.openid`), as the other auth
files are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ocireg.errors import ConfigError
from ocireg.settings.keys import (
    Context,
    check_keys,
    lower_keys,
    resolve_path,
    string,
    string_list,
)

OPENID_PROVIDERS = ("oidc", "google", "gitlab")
_OAUTH2_PROVIDERS = ("github",)


@dataclass(frozen=True)
class OpenIdProvider:
    name: str  # the key under `providers`: the login's `provider` and the callback's path
    issuer: str
    client_id: str = ""  # may come from credentials_file instead
    client_secret: str = ""  # none: a public client (PKCE proves the login is ours)
    credentials_file: Path | None = None
    display_name: str = ""  # zot's `name`: what the login page offers
    scopes: tuple[str, ...] = ("openid",)
    username_claim: str = "email"  # zot's claimMapping.username default
    groups_claim: str = "groups"

    @property
    def title(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class OpenIdSettings:
    providers: dict[str, OpenIdProvider]
    # absolute origins a login may send the browser back to (`callback_ui`), beside this one
    callback_origins: tuple[str, ...] = ()
    external_url: str = ""  # `http.externalUrl`: the origin the provider sends users back to


def parse_openid(raw: Any, ctx: Context) -> OpenIdSettings | None:
    """`http.auth.openid`, or None when it names no provider implemented here."""
    where = "http.auth.openid"
    section = lower_keys(raw or {}, where, deep=True)
    check_keys(section, ("providers", "callbackAllowOrigins"), where)
    providers: dict[str, OpenIdProvider] = {}
    known = ", ".join(OPENID_PROVIDERS)
    raw_providers = lower_keys(section.get("providers") or {}, f"{where}.providers")
    for name, value in raw_providers.items():
        path = f"{where}.providers.{name}"
        if name in _OAUTH2_PROVIDERS:
            ctx.warnings.append(f"{path} (GitHub's OAuth2 login is not implemented)")
        elif name not in OPENID_PROVIDERS:
            ctx.notices.append(f"{path}: not a provider zot knows ({known}, github); ignored")
        else:
            providers[name] = _provider(name, lower_keys(value or {}, path), path, ctx)
    origins = string_list(
        section.get("callbackalloworigins") or [], f"{where}.callbackAllowOrigins"
    )
    external = ctx.get("http.externalUrl") or ""
    if not isinstance(external, str) or (external and not _is_origin_url(external)):
        raise ConfigError("http.externalUrl", f"expected an http(s) URL, got {external!r}")
    if not providers:
        ctx.notices.append(f"{where}: no provider implemented here ({known}); no OpenID logins")
        return None
    return OpenIdSettings(providers, origins, external.rstrip("/"))


def _provider(name: str, raw: dict[str, Any], where: str, ctx: Context) -> OpenIdProvider:
    check_keys(
        raw,
        (
            "name",
            "issuer",
            "clientid",
            "clientsecret",
            "credentialsFile",
            "scopes",
            "claimMapping",
            "authURL",
            "tokenURL",
        ),
        where,
        ("keypath",),
        ctx.warnings,
    )
    issuer = string(raw.get("issuer"), f"{where}.issuer")
    if not _is_origin_url(issuer):
        raise ConfigError(f"{where}.issuer", f"expected an http(s) URL, got {issuer!r}")
    client_id = string(raw.get("clientid"), f"{where}.clientid", required=False)
    credentials = string(raw.get("credentialsfile"), f"{where}.credentialsFile", required=False)
    if not client_id and not credentials:
        raise ConfigError(f"{where}.clientid", "required (here or in credentialsFile)")
    scopes = string_list(raw.get("scopes") or [], f"{where}.scopes")
    if "openid" not in scopes:  # as zot: OpenID Connect needs it, first
        scopes = ("openid", *scopes)
    mapping = lower_keys(raw.get("claimmapping") or {}, f"{where}.claimMapping")
    check_keys(mapping, ("username", "groups"), f"{where}.claimMapping")
    return OpenIdProvider(
        name=name,
        issuer=issuer,
        client_id=client_id,
        client_secret=string(raw.get("clientsecret"), f"{where}.clientsecret", required=False),
        credentials_file=resolve_path(credentials, ctx.base) if credentials else None,
        display_name=string(raw.get("name"), f"{where}.name", required=False),
        scopes=tuple(dict.fromkeys(scopes)),
        username_claim=string(
            mapping.get("username"), f"{where}.claimMapping.username", required=False
        )
        or "email",
        groups_claim=string(mapping.get("groups"), f"{where}.claimMapping.groups", required=False)
        or "groups",
    )


def _is_origin_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
