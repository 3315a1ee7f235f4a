"""Upload sessions on S3, a mixin of `S3Driver`.

Upload sessions outlive a request, a worker process and a member: their state (the
multipart upload id, the parts sent, and the tail of fewer than 5 MiB bytes that S3 does
not accept as a part yet) is one object at the session's own key, `.uploads/<id>`, marked
with the `ocireg-upload` metadata. Any process can continue it; writes of the state are
conditional (If-Match), so two writers of one session cannot both win.

Sessions are also registered: an empty object at `<dir>-sessions/<id>` (so
`<repo>/.uploads-sessions/<id>`) from creation until the session ends, because SeaweedFS never
lists a folder named `.uploads` (its own multipart area has that name). `upload_list` reads that
register, plus the multipart uploads S3 still holds open under `<dir>/` (ListMultipartUploads),
so garbage collection finds every session, including those a crash left half made.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ocireg.storage.base import FileInfo, PathNotFound, StorageUnavailable
from ocireg.storage.s3.writer import DirectWriter, S3Writer

_MARK = "ocireg-upload"
_REGISTER = "-sessions"  # `<repo>/.uploads` -> `<repo>/.uploads-sessions`


@dataclass
class _UploadState:
    upload_id: str | None = None
    parts: list[tuple[int, str, int]] = field(default_factory=list)  # number, etag, size
    tail: bytes = b""
    etag: str | None = None  # of the state object, for the conditional rewrite
    # Where the multipart upload is when not at the session's own key: a blob streamed
    # straight to its final key (`DirectWriter`); such a session takes no appends.
    key: str | None = None

    @property
    def size(self) -> int:
        return sum(p[2] for p in self.parts) + len(self.tail)

    def dump(self) -> bytes:
        head: dict[str, Any] = {"v": 1, "uploadId": self.upload_id, "parts": self.parts}
        if self.key is not None:
            head["key"] = self.key
        return json.dumps(head, separators=(",", ":")).encode() + b"\n" + self.tail

    @classmethod
    def parse(cls, data: bytes, etag: str | None) -> _UploadState:
        head, _, tail = data.partition(b"\n")
        doc = json.loads(head)
        parts = [tuple(p) for p in doc["parts"]]
        return cls(doc.get("uploadId"), parts, tail, etag, doc.get("key"))


class UploadSessions:
    """The upload sessions of `S3Driver`, which inherits them; it provides the client, the keys
    and the object operations declared here."""

    bucket: str

    if TYPE_CHECKING:

        async def _c(self) -> Any: ...

        def _key(self, path: str) -> str: ...

        def _call(self, path: str) -> contextlib.AbstractAsyncContextManager[None]: ...

        async def put_content(self, path: str, data: bytes) -> None: ...

        async def move(self, src: str, dst: str) -> None: ...

        def reader(
            self, path: str, offset: int = 0, length: int | None = None
        ) -> AsyncGenerator[bytes, None]: ...

    async def upload_create(self, path: str) -> None:
        # Registered first: a crash in between leaves an entry that GC expires, never a
        # state object that no listing shows.
        await self._register_session(path)
        await self._save_state(path, _UploadState())

    async def _register_session(self, path: str) -> None:
        await self.put_content(self._register(path), b"")

    async def upload_direct(self, path: str, dst: str, sha256: str | None = None) -> DirectWriter:
        return DirectWriter(self, path, dst, _UploadState(), sha256)

    async def _end_session(self, path: str) -> None:
        """Drop the session's state and register entry (absent ones are no error in S3)."""
        c = await self._c()
        async with self._call(path):
            await c.delete_object(Bucket=self.bucket, Key=self._key(path))
        await self._unregister(path)

    @staticmethod
    def _register(path: str) -> str:
        folder, _, name = path.rpartition("/")
        return f"{folder}{_REGISTER}/{name}"

    async def _unregister(self, path: str) -> None:
        c = await self._c()
        async with self._call(path):
            await c.delete_object(Bucket=self.bucket, Key=self._key(self._register(path)))

    async def upload_list(self, directory: str) -> builtins.list[FileInfo]:
        c = await self._c()
        directory = directory.rstrip("/")
        stamps: dict[str, float] = {}  # session name -> when its register entry or MPU began
        register = self._key(directory + _REGISTER) + "/"
        async with self._call(directory):
            pages = c.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=register, Delimiter="/"
            )
            async for page in pages:
                for o in page.get("Contents", []):
                    name = o["Key"][len(register) :]
                    if name:  # SeaweedFS lists an emptied folder as its own `dir/` key
                        stamps[name] = o["LastModified"].timestamp()
        folder = self._key(directory) + "/"
        for key, _, initiated in await self._multipart_uploads(folder):
            name = key[len(folder) :]
            if name and "/" not in name:
                stamps[name] = max(stamps.get(name, 0.0), initiated)
        found = []
        for name, stamp in sorted(stamps.items()):
            path = f"{directory}/{name}"
            head = await self._head(path)
            if head is None:  # no state (a crash, or it just ended): the entry's own age
                found.append(FileInfo(path, 0, stamp))
                continue
            size = head.get("Metadata", {}).get("ocireg-size", head["ContentLength"])
            # The state object is rewritten by every commit: the time of the last write.
            found.append(FileInfo(path, int(size), head["LastModified"].timestamp()))
        return found

    async def upload_expire(self, path: str, before: float) -> bool:
        c = await self._c()
        key = self._key(path)
        head = await self._head(path)
        if head is not None and head["LastModified"].timestamp() > before:
            return False
        removed = False
        if head is not None:
            with contextlib.suppress(PathNotFound):
                await self._abort_if_upload(path)
            async with self._call(path):
                await c.delete_object(Bucket=self.bucket, Key=key)
            removed = True
        # Multipart uploads at the key that no state names (a crash before it was saved).
        for upload_key, upload_id, initiated in await self._multipart_uploads(key):
            if upload_key != key or (head is None and initiated > before):
                continue
            with contextlib.suppress(PathNotFound):
                async with self._call(path):
                    await c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            removed = True
        entry = await self._head(self._register(path))
        if entry is not None and (head is not None or entry["LastModified"].timestamp() <= before):
            await self._unregister(path)
            removed = True
        return removed

    async def _head(self, path: str) -> dict[str, Any] | None:
        c = await self._c()
        try:
            async with self._call(path):
                head: dict[str, Any] = await c.head_object(Bucket=self.bucket, Key=self._key(path))
        except PathNotFound:
            return None
        return head

    async def _multipart_uploads(self, prefix: str) -> builtins.list[tuple[str, str, float]]:
        """(key, upload id, initiated) of the multipart uploads open under a key prefix."""
        c = await self._c()
        found: builtins.list[tuple[str, str, float]] = []
        async with self._call(prefix):
            pages = c.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            async for page in pages:
                found += [
                    (u["Key"], u["UploadId"], u["Initiated"].timestamp())
                    for u in page.get("Uploads", [])
                ]
        return found

    async def _save_state(self, path: str, state: _UploadState) -> None:
        c = await self._c()
        cond = {"IfMatch": state.etag} if state.etag else {}
        async with self._call(path):
            r = await c.put_object(
                Bucket=self.bucket,
                Key=self._key(path),
                Body=state.dump(),
                Metadata={_MARK: "1", "ocireg-size": str(state.size)},
                **cond,
            )
        state.etag = str(r["ETag"])

    async def _load_state(self, path: str) -> _UploadState | None:
        """The session's state, or None when `path` is an ordinary object (a sealed upload)."""
        c = await self._c()
        async with self._call(path):
            r = await c.get_object(Bucket=self.bucket, Key=self._key(path))
            async with r["Body"] as body:
                data = await body.read()
        if r.get("Metadata", {}).get(_MARK) != "1":
            return None
        return _UploadState.parse(data, str(r["ETag"]))

    async def upload_size(self, path: str) -> int:
        c = await self._c()
        async with self._call(path):
            r = await c.head_object(Bucket=self.bucket, Key=self._key(path))
        meta = r.get("Metadata", {})
        return int(meta["ocireg-size"]) if meta.get(_MARK) == "1" else int(r["ContentLength"])

    async def upload_open(self, path: str) -> S3Writer:
        state = await self._load_state(path)
        if state is None or state.key is not None:
            # Already sealed, or a blob sent straight to its key: nothing can be appended.
            raise PathNotFound(path)
        return S3Writer(self, path, state)

    def upload_reader(self, path: str) -> AsyncIterator[bytes]:
        async def sealed_then_read() -> AsyncIterator[bytes]:
            await self._seal(path)
            async for chunk in self.reader(path):
                yield chunk

        return sealed_then_read()

    async def upload_finish(self, path: str, dst: str) -> None:
        state = await self._load_state(path)
        c = await self._c()
        if state is not None and state.upload_id is None:
            # Small blob: its bytes are all in the state object; one PUT, no copy.
            async with self._call(dst):
                await c.put_object(Bucket=self.bucket, Key=self._key(dst), Body=state.tail)
            async with self._call(path):
                await c.delete_object(Bucket=self.bucket, Key=self._key(path))
            await self._unregister(path)
            return
        if state is not None:
            await self._seal(path, state)
        await self.move(path, dst)
        await self._unregister(path)

    async def upload_abort(self, path: str) -> None:
        await self._abort_if_upload(path)
        c = await self._c()
        async with self._call(path):
            await c.delete_object(Bucket=self.bucket, Key=self._key(path))
        await self._unregister(path)

    async def _abort_if_upload(self, path: str) -> None:
        c = await self._c()
        async with self._call(path):
            r = await c.head_object(Bucket=self.bucket, Key=self._key(path))
        if r.get("Metadata", {}).get(_MARK) != "1":
            return
        state = await self._load_state(path)
        if state is not None and state.upload_id:
            with contextlib.suppress(PathNotFound, StorageUnavailable):
                await self._abort_multipart(state.key or path, state.upload_id)

    async def _abort_multipart(self, path: str, upload_id: str) -> None:
        c = await self._c()
        async with self._call(path):
            await c.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(path), UploadId=upload_id
            )

    async def _seal(self, path: str, state: _UploadState | None = None) -> None:
        """Turn the session at `path` into an ordinary object holding its bytes."""
        state = state or await self._load_state(path)
        if state is None:
            return
        c = await self._c()
        key = self._key(path)
        if state.upload_id is None:
            async with self._call(path):
                await c.put_object(Bucket=self.bucket, Key=key, Body=state.tail)
            return
        parts = list(state.parts)
        if state.tail:
            n = len(parts) + 1
            parts.append((n, await self._send_part(path, state.upload_id, n, state.tail), 0))
        await self._complete(path, state.upload_id, parts)

    async def _complete(
        self,
        path: str,
        upload_id: str,
        parts: builtins.list[tuple[int, str, int]],
        only_new: bool = False,
    ) -> bool:
        """Complete the multipart upload at `path`; with `only_new`, only if no object is
        there yet (If-None-Match, which SeaweedFS honours): False when one was."""
        c = await self._c()
        cond = {"IfNoneMatch": "*"} if only_new else {}
        try:
            async with self._call(path):
                await c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self._key(path),
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]},
                    **cond,
                )
        except StorageUnavailable as exc:
            if only_new and _precondition_failed(exc):
                return False
            raise
        return True

    async def _put_new(
        self, path: str, data: bytes | bytearray, only_new: bool, **extra: Any
    ) -> bool:
        """PutObject; with `only_new`, only if no object is there yet: False when one was."""
        c = await self._c()
        cond = {"IfNoneMatch": "*"} if only_new else {}
        try:
            async with self._call(path):
                await c.put_object(
                    Bucket=self.bucket, Key=self._key(path), Body=data, **cond, **extra
                )
        except StorageUnavailable as exc:
            if only_new and _precondition_failed(exc):
                return False
            raise
        return True

    async def _has_bytes(self, path: str) -> bool:
        """An object with content is at `path` (not a zot dedupe stub, which is empty)."""
        head = await self._head(path)
        return head is not None and int(head["ContentLength"]) > 0

    async def _send_part(
        self, path: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> str:
        c = await self._c()
        async with self._call(path):
            r = await c.upload_part(
                Bucket=self.bucket,
                Key=self._key(path),
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
        return str(r["ETag"])

    async def _start_multipart(self, path: str) -> str:
        c = await self._c()
        async with self._call(path):
            r = await c.create_multipart_upload(Bucket=self.bucket, Key=self._key(path))
        return str(r["UploadId"])


def _precondition_failed(exc: StorageUnavailable) -> bool:
    from botocore.exceptions import ClientError

    cause = exc.__cause__
    return isinstance(cause, ClientError) and (
        cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)
    )
