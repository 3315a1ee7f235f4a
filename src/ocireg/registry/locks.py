"""Per-repository and per-upload locks that hold across the worker processes of an instance.

In a cluster one member owns each repository, so a lock local to the machine is enough;
`flock` covers the Granian worker processes, an asyncio lock the coroutines of one process
(so waiting coroutines do not each occupy a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ocireg.storage import StorageUnavailable


class LocalLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._local: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        local = self._local.setdefault(key, asyncio.Lock())
        async with local:
            fd = self._open(key)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock
        if not local.locked() and self._local.get(key) is local:
            del self._local[key]

    def _open(self, key: str) -> int:
        name = hashlib.sha256(key.encode()).hexdigest()[:40]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(self.directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageUnavailable(f"lock directory {self.directory}: {exc.strerror}") from exc

    def repo(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.hold(f"repo:{name}")

    def upload(self, session: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.hold(f"upload:{session}")
