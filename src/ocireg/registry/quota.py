"""zot's `storage.maxRepos`: a quota on the number of repositories manifests were pushed into.

A manifest pushed into a repository that does not count yet is refused with 429
TOOMANYREQUESTS (detail: the limit) once that many other repositories count, as zot refuses
it; pushes into a repository that counts, blob uploads and everything else go on. As in zot
(whose metadata database keeps a repository once a manifest was pushed into it), a
repository counts from its first manifest on, also once its manifests are deleted, for as
long as it is in storage: here, when its index.json lists a manifest, or when the metadata
store noted a push into it (`note_quota_repository`, left by `rebuild-meta`). Repositories
that only received blobs do not count. The count walks the storage's repositories from the
catalog's first name on, and only until the limit is reached: the check costs a push into a
new repository up to `limit` index reads, and nothing to any other request.

Pushes into new repositories are checked one at a time per instance (a lock across its
worker processes, held until the push is answered), as zot does in its process; members of
a cluster do not wait for one another, so pushes into new repositories on several members
at once may pass the limit by as many. Sync's copies into a mirror are not pushes: as in
zot, they are never refused, though the repositories they fill count.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from ocireg.errors import ErrorCode, RegistryError
from ocireg.meta import MetaStore, MetaUnavailable
from ocireg.registry.index import IndexCache
from ocireg.registry.locks import LocalLocks

log = logging.getLogger("ocireg.registry")
LOCK = "quota:repositories"


class RepoQuota:
    def __init__(
        self,
        locks: LocalLocks,
        indexes: IndexCache,
        meta: MetaStore,
        repositories: Callable[[], AsyncIterator[str]],
        limit: int = 0,
    ) -> None:
        self.locks = locks
        self.indexes = indexes
        self.meta = meta
        self.repositories = repositories
        self.limit = limit  # 0 (or less): no quota

    @contextlib.asynccontextmanager
    async def admit(self, repo: str) -> AsyncIterator[None]:
        """Around a manifest push into `repo`: raises TOOMANYREQUESTS when it would make one
        repository too many."""
        if self.limit <= 0 or await self._holds_manifests(repo):
            yield
            return
        async with self.locks.hold(LOCK):
            noted = await self.meta.quota_repositories()
            # Another push may have filled `repo` while this one waited for the lock.
            if repo not in noted and not await self._holds_manifests(repo):
                count = await self._others_counted(repo, noted)
                if count >= self.limit:
                    log.warning(
                        "repository quota reached, push refused",
                        extra={"repo": repo, "current": count, "limit": self.limit},
                    )
                    raise RegistryError(
                        ErrorCode.TOOMANYREQUESTS,
                        "repository quota reached",
                        {"limit": str(self.limit)},
                    )
            yield  # the push; noted only if it was stored
            if repo not in noted:
                try:
                    await self.meta.note_quota_repository(repo)
                except MetaUnavailable as exc:  # stored all the same; its index.json counts it
                    log.warning("quota note not kept", extra={"repo": repo, "error": str(exc)})

    async def _holds_manifests(self, repo: str) -> bool:
        try:
            return bool(await self.indexes.size(repo))
        except ValueError:  # an index.json that does not parse: the push itself says so
            return True

    async def _others_counted(self, repo: str, noted: set[str]) -> int:
        count = 0
        async for name in self.repositories():
            if name != repo and (name in noted or await self._holds_manifests(name)):
                count += 1
                if count >= self.limit:
                    break
        return count
