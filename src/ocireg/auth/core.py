"""The auth services of one worker process, built once from the config, and the bearer
scope a request needs (from its classification, `ocireg.target`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocireg.auth.apikeys import ApiKeys
from ocireg.auth.grants import CATALOG_SCOPE, Scope
from ocireg.auth.htpasswd import Htpasswd, read_htpasswd
from ocireg.auth.policy import AccessPolicy
from ocireg.auth.settings import AuthSettings
from ocireg.config import Config
from ocireg.identity import Identity
from ocireg.meta.base import MetaStore
from ocireg.target import Action, Kind, Target

if TYPE_CHECKING:
    from ocireg.auth.bearer import BearerVerifier
    from ocireg.auth.ldap import Ldap
    from ocireg.auth.workload import WorkloadIdentity

_BEARER_ACTIONS = {Action.READ: ("pull",), Action.DELETE: ("delete",)}


def bearer_scope(aim: Target) -> Scope | None:
    """The token scope a client must ask for to make this request."""
    if aim.kind is Kind.CATALOG:
        return CATALOG_SCOPE
    if aim.kind is not Kind.REPOSITORY or aim.repository is None:
        return None
    return Scope("repository", aim.repository, _BEARER_ACTIONS.get(aim.action, ("pull", "push")))


class DirectoryDown(Exception):
    """The LDAP directory gave no answer (unreachable, too slow, the service account
    refused, or too many checks waiting): nothing is known about the user. The API refuses
    (401, as zot); the pages say the directory did not answer. (Here, not in `auth.ldap`,
    which imports ldap3: whoever catches it must not need ldap3.)"""


@dataclass(frozen=True)
class Login:
    """Credentials accepted: who they are, and whether the directory (not the htpasswd
    file) vouched for them."""

    identity: Identity
    by_directory: bool


class AuthServices:
    """The checkers one worker needs; None of them when that part is not configured."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.htpasswd = Htpasswd(settings.htpasswd) if settings.htpasswd else None
        self.ldap = _ldap(settings) if settings.ldap else None
        # bearer tokens: the token server's (`cert`), and the workloads' ID tokens (`oidc`)
        self.bearer = _verifier(settings) if settings.bearer and settings.bearer.cert else None
        self.workload = _workload(settings) if settings.bearer and settings.bearer.oidc else None
        self.policy = AccessPolicy(settings.access_control) if settings.access_control else None
        self.api_keys = ApiKeys() if settings.api_keys else None
        # The identity a web session's cookie gives an API request (zot's UI calls the API
        # with its session); set by the web pages, which own the sessions (ocireg.ui).
        self.session_identity: Callable[[str, MetaStore], Awaitable[Identity | None]] | None = None
        # zot lets anonymous requests through only when some repository grants them something.
        # zot's bearer auth (either kind) lets nobody in without a token.
        self.anonymous_allowed = (
            settings.bearer is None
            and self.policy is not None
            and self.policy.anonymous_may_do_anything()
        )

    async def login(self, user: str, password: str, meta: MetaStore) -> Identity | None:
        """The identity of Basic credentials, or None when they are refused (a directory
        that did not answer too: a 401, as zot answers): an API key (when they are on),
        then as `verify` checks passwords. zot tries keys last; first here, because a key
        is one lookup where the others cost a bcrypt or a bind, and a password that is a
        live key of the same user gives the same user."""
        if self.api_keys is not None:
            identity = await self.api_keys.login(meta, user, password)
            if identity is not None:
                return identity
        try:
            found = await self.verify(user, password)
        except DirectoryDown:  # logged where it happened
            return None
        if found is None:
            return None
        if self.api_keys is not None:  # the groups the user's keys act with
            await self.api_keys.note_groups(meta, user, found.identity.groups)
        return found.identity

    async def verify(self, user: str, password: str) -> Login | None:
        """Who these credentials log in as, and by what, or None when they are refused: the
        htpasswd file first, then the LDAP directory, as zot tries them (no API key: the
        web pages' login takes passwords). The groups are those `http.accessControl` names
        the user in, and the directory's. DirectoryDown when the directory, the last one
        asked, did not answer."""
        # A user the file does not list goes straight to the directory when there is one:
        # no bcrypt of a dummy hash on each of an LDAP user's requests.
        htpasswd = self.htpasswd
        if (
            htpasswd is not None
            and (self.ldap is None or htpasswd.lists(user))
            and await htpasswd.check(user, password)
        ):
            return Login(Identity(user=user, groups=self.groups_of(user), method="basic"), False)
        if self.ldap is not None:
            found = await self.ldap.check(user, password)
            if found is not None:
                return Login(self._directory_user(user, found, "basic"), True)
        return None

    async def directory_user(self, user: str, method: str) -> Identity | None:
        """A directory user's identity as the directory has it now, found without their
        password (the pages' sessions keep none), or None when it no longer has them;
        DirectoryDown when it did not answer."""
        if self.ldap is None:
            return None
        found = await self.ldap.lookup(user)
        return None if found is None else self._directory_user(user, found, method)

    def _directory_user(self, user: str, groups: tuple[str, ...], method: str) -> Identity:
        return Identity(user=user, groups=self.groups_of(user, groups), method=method)

    def groups_of(self, user: str, more: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The groups `http.accessControl.groups` puts the user in, then `more` (a
        directory's or a provider's), each once."""
        named = self.policy.groups_of(user) if self.policy else ()
        return tuple(dict.fromkeys((*named, *more))) if more else named

    async def close(self) -> None:
        if self.workload is not None:
            await self.workload.close()

    def challenge(self, aim: Target, error: str | None = None) -> str:
        bearer = self.settings.bearer
        if bearer is None:
            return f'Basic realm="{self.settings.realm}"'
        # zot sends no challenge when `oidc` comes without a realm; a 401 must carry one
        # (RFC 9110 11.6.1), so http.realm names it then.
        parts = [f'realm="{bearer.realm or self.settings.realm}"']
        if bearer.service:
            parts.append(f'service="{bearer.service}"')
        scope = bearer_scope(aim)
        if scope is not None:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)


def _verifier(settings: AuthSettings) -> BearerVerifier:
    # PyJWT and cryptography: imported only where bearer auth is configured (~70 ms of
    # every worker's start otherwise).
    from ocireg.auth.bearer import BearerVerifier

    assert settings.bearer is not None
    return BearerVerifier(settings.bearer)


def _workload(settings: AuthSettings) -> WorkloadIdentity:
    # PyJWT and the CEL engine: imported only where workload identity is configured
    from ocireg.auth.workload import WorkloadIdentity

    assert settings.bearer is not None
    return WorkloadIdentity(settings.bearer.oidc)


def _ldap(settings: AuthSettings) -> Ldap:
    # ldap3: imported only where LDAP is configured
    from ocireg.auth.ldap import Ldap

    assert settings.ldap is not None
    return Ldap(settings.ldap)


def build_auth(config: Config) -> AuthServices | None:
    """The auth services, or None when neither http.auth nor http.accessControl is set."""
    settings = config.auth
    return AuthServices(settings) if settings.enabled else None


def check_auth(config: Config) -> list[str]:
    """`ocireg verify`: every auth file readable and well-formed, every policy condition
    compiled; warnings to print."""
    settings = config.auth
    warnings: list[str] = []  # the keys not implemented are in config.warnings
    if settings.htpasswd is not None:
        users = read_htpasswd(settings.htpasswd)
        if users.skipped:
            warnings.append(
                "http.auth.htpasswd.path: entries that are not bcrypt are ignored: "
                + ", ".join(users.skipped)
            )
        if not users.entries:
            warnings.append("http.auth.htpasswd.path: no bcrypt entries; nobody can log in")
    if settings.bearer is not None and settings.bearer.cert is not None:
        _verifier(settings)  # raises ConfigError when the certificate is unusable
    if settings.bearer is not None and settings.bearer.oidc:
        _workload(settings)  # raises ConfigError when a CEL expression or a CA is unusable
    if settings.ldap is not None:
        _ldap(settings)  # raises ConfigError when the credentials file is unusable
    if settings.openid is not None:
        from ocireg.auth.openid import client_credentials

        for provider in settings.openid.providers.values():
            client_credentials(provider)  # raises ConfigError when the file is unusable
    if settings.access_control is not None:
        AccessPolicy(settings.access_control)  # raises ConfigError for a condition's CEL
    if (
        settings.access_control is not None
        and not settings.logins
        and not settings.bearer
        and not settings.openid
    ):
        warnings.append(
            "http.accessControl without http.auth: every request is anonymous, "
            "so only anonymousPolicy applies"
        )
    return warnings
