"""Repositories: creation of the OCI layout, existence, and the catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ocireg.meta import MetaStore
from ocireg.ordered import ordered
from ocireg.registry import layout
from ocireg.registry.lately import Lately
from ocireg.registry.locks import LocalLocks
from ocireg.storage import PathNotFound, StorageDriver

PAGE_CHUNK = 500  # names read from the catalog index at a time
# Directory listings a walk of remote storage asks for at once (one level, in order): each
# is a round trip, and a repository is at least one.
LIST_AHEAD = 8

_SKIP_DIRS = frozenset({layout.BLOBS_DIR, layout.UPLOADS_DIR})


class Repositories:
    def __init__(
        self, driver: StorageDriver, locks: LocalLocks, meta: MetaStore, list_ahead: int = 1
    ) -> None:
        self.driver = driver
        self.locks = locks
        self.meta = meta
        # Repositories found lately, which `ensure` trusts: ocireg never removes one, so this
        # only bounds how long a layout removed by hand goes unnoticed by pushes. Each look
        # is a request to the bucket on S3, and every manifest put makes one.
        self._found: Lately[str] = Lately()
        self.list_ahead = list_ahead  # listings a walk asks for at once (LIST_AHEAD)
        # Told of each repository `ensure` created (the events' repository.created).
        self.created: Callable[[str], None] = lambda repo: None

    async def exists(self, repo: str) -> bool:
        try:
            await self.driver.stat(layout.index(repo), files_only=True)
        except PathNotFound:
            self._found.forget(repo)
            return False
        self._found.note(repo)
        return True

    async def ensure(self, repo: str) -> None:
        """Create the repository's OCI layout if it is not there (first push creates it)."""
        if repo in self._found or await self.exists(repo):
            return
        async with self.locks.repo(repo):
            if await self.exists(repo):
                return
            await self.driver.put_content(layout.oci_layout(repo), layout.OCI_LAYOUT_CONTENT)
            # Only if absent: another instance on the same bucket may have created it.
            made = await self.driver.put_if(
                layout.index(repo), b'{"schemaVersion":2,"manifests":[]}', None
            )
            await self.meta.add_repository(repo)
        self._found.note(repo)
        if made is not None:
            self.created(repo)

    async def page(
        self, last: str | None, limit: int | None, visible: Callable[[str], bool] | None
    ) -> tuple[list[str], bool]:
        """Up to `limit` repositories after `last` that `visible` accepts, from the catalog
        index in the metadata store, and whether more follow. The cost follows the page, not
        the number of repositories (with access control, the names skipped to fill it)."""
        found: list[str] = []
        cursor = last or ""
        while limit is None or len(found) <= limit:
            chunk = await self.meta.repositories_after(cursor, PAGE_CHUNK)
            found += [name for name in chunk if visible is None or visible(name)]
            if len(chunk) < PAGE_CHUNK:
                break
            cursor = chunk[-1]
        if limit is None:
            return found, False
        return found[:limit], len(found) > limit

    async def catalog(self) -> list[str]:
        """Every repository under the root, sorted by byte order (a walk of the storage)."""
        return sorted([repo async for repo in self.walk()])

    async def walk(self, after: str = "") -> AsyncIterator[str]:
        """Every repository under the root, one at a time, in walk order (names compared
        component by component: `a`, `a/b`, `a-c`), starting after `after`: a long run over
        every repository resumes from the last one it finished. Only the listings on the
        way down are held, whatever the number of repositories, and on remote storage a few
        listings of one level ahead (LIST_AHEAD)."""
        mark = _components(after) if after else ()
        async for repo in self._walk("", mark, await self._list("")):
            yield repo

    async def _walk(
        self, prefix: str, mark: tuple[str, ...], names: list[str]
    ) -> AsyncIterator[str]:
        is_repository = layout.INDEX_FILE in names and layout.OCI_LAYOUT_FILE in names
        if prefix and is_repository and _components(prefix) > mark:
            yield prefix
        children = []
        for name in sorted(
            name[:-1]
            for name in names
            if name.endswith("/") and not name.startswith(".") and name[:-1] not in _SKIP_DIRS
        ):
            child = f"{prefix}/{name}" if prefix else name
            parts = _components(child)
            if parts < mark and mark[: len(parts)] != parts:
                continue  # everything below comes before `after`: done already
            children.append(child)
        async for child, listed in ordered(children, self._list, self.list_ahead):
            async for repo in self._walk(child, mark, listed):
                yield repo

    async def _list(self, prefix: str) -> list[str]:
        try:
            return await self.driver.list(prefix)
        except PathNotFound:
            return []


def _components(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))
