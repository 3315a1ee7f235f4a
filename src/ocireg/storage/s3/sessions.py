"""Upload sessions on S3: the `SessionStore` over the S3 driver and its client.

Upload sessions outlive a request, a worker process and a member. A session is a resumable
writer's state object at the session's own key, `.uploads/<id>` (`state.py`: the multipart
upload id, the parts sent, the tail not yet a part), so any process can continue it through
`S3Driver.writer(path, append=True)`. Sessions are also registered (`register.py`) from
creation until they end; `list` reads that register plus the multipart uploads S3 still
holds open under `<dir>/` (ListMultipartUploads), so garbage collection finds every session,
including those a crash left half made.
"""

from __future__ import annotations

import builtins
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

from ocireg.storage.base import FileInfo, FileWriter, PathNotFound
from ocireg.storage.s3 import state as states
from ocireg.storage.s3.driver import S3Driver
from ocireg.storage.s3.register import Register, entry
from ocireg.storage.s3.state import UploadState
from ocireg.storage.s3.writer import DirectWriter

# States kept between a final PUT's size and its finish: at most KEPT, each with a tail of at
# most KEPT_TAIL bytes (a larger one is read again by its finish: one request more, beside the
# bytes moved), so that states a failed PUT left here cost little memory.
KEPT = 64
KEPT_TAIL = 256 << 10


class S3Sessions:
    def __init__(self, driver: S3Driver) -> None:
        self.driver = driver
        self.client = driver.client
        self.register = Register(driver.client)
        # States read by the final PUT's `size(ending=True)`, for its `finish`: that PUT
        # holds the session's lock in between, and anything else done to the session here
        # drops the kept state.
        self._kept: OrderedDict[str, UploadState] = OrderedDict()

    async def create(self, path: str) -> None:
        # Registered first: a crash in between leaves an entry that GC expires, never a
        # state object that no listing shows.
        await self.register.add(path)
        await states.save(self.client, path, UploadState())

    async def size(self, path: str, ending: bool = False) -> int:
        if not ending:
            return await states.size(self.client, path)
        state, size = await states.peek(self.client, path)
        self._kept.pop(path, None)
        if state is not None and len(state.tail) <= KEPT_TAIL:
            self._kept[path] = state
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return size

    async def open(self, path: str) -> FileWriter:
        self._kept.pop(path, None)
        try:
            return await self.driver.writer(path, append=True)
        except PathNotFound:
            if not await self._reopen(path):
                raise
            return await self.driver.writer(path, append=True)

    async def _reopen(self, path: str) -> bool:
        """A session whose final PUT was streaming the blob to its key when its process
        died: the state names that upload (`key`), and the session reports no bytes (Range
        0-0). Abort the upload and empty the session, so the client may start again from 0
        as the Range says. False if the session is anything else (sealed, or gone)."""
        state = await states.load(self.client, path)
        if state is None or state.key is None:
            return False
        await states.abort(self.client, path, state)
        await states.save(self.client, path, UploadState())
        return True

    def read(self, path: str) -> AsyncIterator[bytes]:
        kept = self._kept.pop(path, None)  # sealed below: kept no more, but read already

        async def sealed_then_read() -> AsyncIterator[bytes]:
            await states.seal(self.client, path, kept)
            async for chunk in self.driver.reader(path):
                yield chunk

        return sealed_then_read()

    async def finish(self, path: str, dst: str) -> None:
        state = self._kept.pop(path, None)
        if state is None:
            state = await states.load(self.client, path)
        if state is not None and state.upload_id is None:
            # Small blob: its bytes are all in the state object; one PUT, no copy.
            await self.client.put(dst, state.tail)
            await self.register.end(path)
            return
        if state is not None:
            await states.seal(self.client, path, state)
        await self.driver.move(path, dst)
        await self.register.remove(path)

    async def direct(self, path: str, dst: str, sha256: str | None = None) -> FileWriter:
        self._kept.pop(path, None)
        return DirectWriter(self.register, path, dst, sha256)

    async def abort(self, path: str) -> None:
        await states.abort(self.client, path, self._kept.pop(path, None))
        await self.register.end(path)

    async def list(self, directory: str) -> builtins.list[FileInfo]:
        directory = directory.rstrip("/")
        # session name -> when its register entry or multipart upload began
        stamps = await self.register.entries(directory)
        folder = self.client.key(directory) + "/"
        for key, _, initiated in await self.client.multipart_uploads(folder):
            name = key[len(folder) :]
            if name and "/" not in name:
                stamps[name] = max(stamps.get(name, 0.0), initiated)
        found = []
        for name, stamp in sorted(stamps.items()):
            path = f"{directory}/{name}"
            head = await self.client.head(path)
            if head is None:  # no state (a crash, or it just ended): the entry's own age
                found.append(FileInfo(path, 0, stamp))
                continue
            size = head.get("Metadata", {}).get(states.SIZE, head["ContentLength"])
            # The state object is rewritten by every commit: the time of the last write.
            found.append(FileInfo(path, int(size), head["LastModified"].timestamp()))
        return found

    async def expire(self, path: str, before: float) -> bool:
        client = self.client
        key = client.key(path)
        head = await client.head(path)
        if head is not None and head["LastModified"].timestamp() > before:
            return False
        removed = False
        if head is not None:
            with contextlib.suppress(PathNotFound):
                await states.abort(client, path)
            await client.delete(path)
            removed = True
        # Multipart uploads at the key that no state names (a crash before it was saved).
        for upload_key, upload_id, initiated in await client.multipart_uploads(key):
            if upload_key != key or (head is None and initiated > before):
                continue
            with contextlib.suppress(PathNotFound):
                await client.abort_multipart(path, upload_id)
            removed = True
        registered = await client.head(entry(path))
        if registered is not None and (
            head is not None or registered["LastModified"].timestamp() <= before
        ):
            await self.register.remove(path)
            removed = True
        return removed
