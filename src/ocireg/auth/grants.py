"""What a bearer token grants, in the words of the Docker/OCI token protocol: scopes
(`type:name:actions`) and the `access` claim. No cryptography here (auth/bearer.py
verifies the tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TokenError(Exception):
    """A token that is malformed, badly signed, expired or not yet valid."""


@dataclass(frozen=True)
class Scope:
    """One `type:name:actions` scope of the token protocol."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


CATALOG_SCOPE = Scope("registry", "catalog", ("*",))


def is_grant(entry: Any) -> bool:
    """An entry of the `access` claim in the expected shape."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("type"), str)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("actions"), list)
    )


def grants(access: tuple[dict[str, Any], ...], type_: str, name: str, action: str) -> bool:
    """Whether a token's `access` claim grants `action` on the resource."""
    for entry in access:
        if entry.get("type") == type_ and entry.get("name") == name:
            actions = entry.get("actions") or []
            if action in actions or "*" in actions:
                return True
    return False
