"""Who is making a request, as established once by the member that received it.

Authentication middlewares put an `Identity` in `scope[IDENTITY_KEY]`; the cluster proxy
carries it, signed, to the repository's owner, which authorizes with it and does not
authenticate again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IDENTITY_KEY = "ocireg.identity"
# Set by the cluster layer on a request that a member forwarded with valid proof.
FORWARDED_KEY = "ocireg.forwarded"
# Set by authorization when access control applies: a `Callable[[str], bool]` telling which
# repositories the caller may read; the catalog handler lists only those.
CATALOG_FILTER_KEY = "ocireg.catalog_filter"


@dataclass(frozen=True)
class Identity:
    user: str | None = None  # None: anonymous
    groups: tuple[str, ...] = ()
    # "basic", "bearer" (the token server's: `access` decides), "oidc" (a workload's ID
    # token: accessControl decides), "mtls", "anonymous"
    method: str = "anonymous"
    # Bearer tokens: the token's `access` claim, kept so the owner can authorize with it.
    access: tuple[dict[str, Any], ...] = field(default=())
    # Workload identity ("oidc"): the verified ID token's claims, which policy conditions
    # read as `req.claims` (zot fills it for those tokens only); carried to the owner with
    # the rest, since it authorizes without the token.
    # Left out of the hash (a dict has none), so an Identity stays hashable.
    claims: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def anonymous(self) -> bool:
        return self.user is None

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "groups": list(self.groups),
            "method": self.method,
            "access": list(self.access),
            **({"claims": self.claims} if self.claims else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(
            user=data.get("user"),
            groups=tuple(data.get("groups") or ()),
            method=str(data.get("method") or "anonymous"),
            access=tuple(data.get("access") or ()),
            claims=claims if isinstance(claims := data.get("claims"), dict) else {},
        )


ANONYMOUS = Identity()


def identity_of(scope: Mapping[str, Any]) -> Identity:
    """Who makes the request, once authentication has run (ANONYMOUS before it, or none)."""
    identity: Identity = scope.get(IDENTITY_KEY) or ANONYMOUS
    return identity
