"""The current version of each repository's index.json, known from the metadata store, so
that a tag or manifest read on S3 needs no request to the bucket (docs/storage.md, "Tag and
manifest reads without a storage round trip").

The store keeps one key per repository (`MetaStore.index_version`). Its value is either
`v:<version>`, the version (ETag) index.json has now, or `t:<uuid>`, a token: a write is in
progress or ended in a way nobody recorded, and readers must ask storage. The rules:

- A writer replaces the key by a fresh token of its own *before* its conditional write
  (`mark`), and after the write swaps its token for the new version (`settle`). If the swap
  fails (someone changed the key meanwhile), it sets a fresh token instead. Only then is the
  write acknowledged; if the store cannot be reached for either step, the request fails (503)
  rather than being acknowledged while the key may still name an older version.
- A reader that finds `v:<version>` and holds that version in its cache serves the cache.
  One that finds a token, no key, or a version that storage contradicts, reads storage; it
  may then heal the key: it claims it first (swaps what it saw for a token of its own), reads
  storage, and swaps its token for the version it read. Any writer's mark in between replaces
  the claim, so the swap fails and nothing older than that write can be set.

Hence a version is only ever set from a token that was put there after every write that
came before it was marked, by a party that read storage after that; an acknowledged write
is never followed by a read that sees an older version (the argument is written out in
docs/storage.md). Every value expires after VERSION_TTL seconds, which bounds how long a
writer that does not follow these rules (one ocireg cannot see) can go unnoticed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from ocireg.meta import MetaStore

VERSION_TTL = 300  # seconds; also the bound for writers outside the protocol (docs/storage.md)
# After the store failed a read, readers go straight to storage for this long: a store that
# hangs must not add its timeout to every read.
PAUSE_AFTER_FAILURE = 5.0
VERSION = "v:"
TOKEN = "t:"


def new_token() -> str:
    return f"{TOKEN}{uuid.uuid4().hex}"


def version_of(value: str | None) -> str | None:
    """The version a key's value names, None for a token or no value."""
    if value is not None and value.startswith(VERSION):
        return value[len(VERSION) :]
    return None


class IndexVersions:
    """The key's protocol for one process. `writes`: this process's writers keep the key
    (on S3 with Redis; with sqlite on a single instance declared the only writer, see
    server/services.py). `trusted()`: readers may believe it, which needs every writer of
    the storage to keep it too (the server narrows it in a cluster)."""

    def __init__(self, meta: MetaStore, writes: bool) -> None:
        self.meta = meta
        self.writes = writes
        self.trusted: Callable[[], bool] = lambda: self.writes
        # One read of a key in flight per repository; requests that arrive meanwhile wait
        # for the next read, which starts after they arrived (never an answer older than
        # the request: a write acknowledged before it is seen).
        self._next: dict[str, asyncio.Future[str | None]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._paused_until = 0.0

    def keep(self) -> None:
        """Keep and believe the keys from now on, called before the first request: the
        configuration says every writer of this storage shares this store."""
        self.writes = True

    def usable(self) -> bool:
        """Whether readers may ask the key now: trusted, and the store did not just fail."""
        return self.trusted() and time.monotonic() >= self._paused_until

    # --- writers ---------------------------------------------------------------------------

    async def mark(self, repo: str) -> str:
        """Before a write of index.json: the key becomes this write's token."""
        token = new_token()
        await self.meta.set_index_version(repo, token, VERSION_TTL)
        return token

    async def settle(self, repo: str, token: str, version: str) -> None:
        """After the write that `mark` announced stored `version`."""
        if not await self.meta.swap_index_version(repo, token, VERSION + version, VERSION_TTL):
            await self.meta.set_index_version(repo, new_token(), VERSION_TTL)

    # --- readers ---------------------------------------------------------------------------

    async def read(self, repo: str) -> str | None:
        """The key's value, read after this call began."""
        waiting = self._next.get(repo)
        if waiting is None:
            waiting = self._next[repo] = asyncio.get_running_loop().create_future()
            if repo not in self._readers:
                self._readers[repo] = asyncio.create_task(self._read_rounds(repo))
        return await asyncio.shield(waiting)

    async def _read_rounds(self, repo: str) -> None:
        try:
            while (waiting := self._next.pop(repo, None)) is not None:
                try:
                    waiting.set_result(await self.meta.index_version(repo))
                except Exception as exc:
                    self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
                    waiting.set_exception(exc)
                    waiting.exception()  # retrieved: waiters that went away must not log it
        finally:
            del self._readers[repo]

    async def claim(self, repo: str, seen: str | None) -> str | None:
        """Swap the value a reader saw for its own token; the token, or None if the key
        changed meanwhile (then the reader must not heal it)."""
        token = new_token()
        return token if await self.meta.swap_index_version(repo, seen, token, VERSION_TTL) else None

    async def heal(self, repo: str, token: str, version: str) -> None:
        """Our claim becomes the version we read from storage after claiming, unless a
        writer marked the key since (then nothing changes)."""
        await self.meta.swap_index_version(repo, token, VERSION + version, VERSION_TTL)
