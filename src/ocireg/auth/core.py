"""What a request needs (from its method and path alone), and the auth services of one
worker process, built once from the config."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ocireg import names
from ocireg.auth.bearer import CATALOG_SCOPE, BearerVerifier, Scope
from ocireg.auth.htpasswd import Htpasswd, read_htpasswd
from ocireg.auth.policy import AccessPolicy
from ocireg.auth.settings import AuthSettings
from ocireg.config import Config

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/startupz"})
_MANIFESTS = "/manifests/"


class Kind(enum.Enum):
    HEALTH = "health"  # never needs credentials
    PING = "ping"  # GET /v2/ (and unknown /v2/ paths, which 404 once authenticated)
    CATALOG = "catalog"
    REPOSITORY = "repository"
    OTHER = "other"  # outside /v2/: metrics and the like


@dataclass(frozen=True)
class Need:
    kind: Kind
    action: str = "read"  # read, create or delete; a tag PUT may turn create into update
    repository: str | None = None
    tag: str | None = None  # the tag a manifest PUT writes

    def bearer_scope(self) -> Scope | None:
        if self.kind is Kind.CATALOG:
            return CATALOG_SCOPE
        if self.kind is not Kind.REPOSITORY or self.repository is None:
            return None
        actions = {"read": ("pull",), "delete": ("delete",)}.get(self.action, ("pull", "push"))
        return Scope("repository", self.repository, actions)


def need_of(method: str, path: str) -> Need:
    if path in HEALTH_PATHS:
        return Need(Kind.HEALTH)
    if path in ("/v2", "/v2/"):
        return Need(Kind.PING)
    if path == "/v2/_catalog":
        return Need(Kind.CATALOG)
    if not path.startswith("/v2/"):
        return Need(Kind.OTHER)
    repository = names.repository_of(path)
    if repository is None:
        return Need(Kind.PING)
    if method in ("GET", "HEAD", "OPTIONS"):
        action = "read"
    elif method == "DELETE":
        action = "delete"
    else:
        action = "create"
    tag = None
    if method == "PUT" and _MANIFESTS in path:
        reference = path[path.rindex(_MANIFESTS) + len(_MANIFESTS) :]
        tag = reference if names.is_tag(reference) else None
    return Need(Kind.REPOSITORY, action, repository, tag)


class AuthServices:
    """The checkers one worker needs; None of them when that part is not configured."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.htpasswd = Htpasswd(settings.htpasswd) if settings.htpasswd else None
        self.bearer = BearerVerifier(settings.bearer) if settings.bearer else None
        self.policy = AccessPolicy(settings.access_control) if settings.access_control else None
        # zot lets anonymous requests through only when some repository grants them something.
        self.anonymous_allowed = (
            self.bearer is None
            and self.policy is not None
            and self.policy.anonymous_may_do_anything()
        )

    def challenge(self, need: Need, error: str | None = None) -> str:
        if self.bearer is not None:
            return self.bearer.challenge(need.bearer_scope(), error)
        return f'Basic realm="{self.settings.realm}"'


def build_auth(config: Config) -> AuthServices | None:
    """The auth services, or None when neither http.auth nor http.accessControl is set."""
    settings = config.auth
    return AuthServices(settings) if settings.enabled else None


def check_auth(config: Config) -> list[str]:
    """`ocireg verify`: every auth file readable and well-formed; warnings to print."""
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
    if settings.bearer is not None:
        BearerVerifier(settings.bearer)  # raises ConfigError when the certificate is unusable
    if settings.access_control is not None and settings.htpasswd is None and not settings.bearer:
        warnings.append(
            "http.accessControl without http.auth: every request is anonymous, "
            "so only anonymousPolicy applies"
        )
    return warnings
