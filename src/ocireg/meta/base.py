"""The metadata-store contract. Storage is the source of truth: everything here can be
rebuilt from it (`ocireg rebuild-meta`), and a store that comes back empty (a new Redis, a
FLUSHALL) says so through `ready()` until the rebuild has run."""

from __future__ import annotations

from typing import Any, Protocol


class MetaUnavailable(Exception):
    """The store cannot be reached; requests that need it get 503."""


class MetaStore(Protocol):
    name: str

    async def ready(self) -> bool:
        """True once a rebuild completed on this store (and nothing flushed it since)."""
        ...

    async def mark_ready(self) -> None: ...

    async def try_rebuild_lock(self, owner: str, seconds: int) -> bool:
        """Claim the right to rebuild for `seconds`; False when someone else holds it."""
        ...

    async def clear(self) -> None:
        """Forget everything ocireg stored (before a rebuild)."""
        ...

    async def add_referrer(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None: ...

    async def remove_referrer(self, repo: str, subject: str, digest: str) -> None: ...

    async def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]: ...

    async def set_blob_location(self, digest: str, path: str) -> None: ...

    async def blob_location(self, digest: str) -> str | None:
        """A storage path known to hold the bytes of `digest` (for dedupe stubs)."""
        ...

    async def health(self) -> None:
        """Raise MetaUnavailable when the store cannot serve requests."""
        ...

    async def close(self) -> None: ...
