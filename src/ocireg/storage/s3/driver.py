"""The S3 driver (AWS S3, SeaweedFS, MinIO, Ceph) over aiobotocore, with zot's object layout.

Keys: zot's image store puts its root at `rootdirectory` and the S3 driver under it prefixes
`rootdirectory` again, so `<repo>/index.json` lives at `<rd>/<rd>/<repo>/index.json`
(`rd` = rootdirectory without slashes; no rootdirectory: `<repo>/index.json`). ocireg
reads and writes the same keys, so a zot bucket and an ocireg bucket are interchangeable.

aiobotocore rather than obstore: obstore hides multipart upload ids (only a writer object
that lives and dies in one process), and resumable sessions need them. Through SeaweedFS
the two moved bytes at about the same rates (docs/storage.md has the figures).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

from ocireg.settings import s3writes
from ocireg.storage.base import (
    Draft,
    FileInfo,
    PathNotFound,
    Pieces,
    StorageUnavailable,
    joined,
)
from ocireg.storage.s3 import state as states
from ocireg.storage.s3.client import S3Client, precondition_failed
from ocireg.storage.s3.download import pieces
from ocireg.storage.s3.presign import Presigner
from ocireg.storage.s3.settings import S3Settings
from ocireg.storage.s3.state import UploadState
from ocireg.storage.s3.writer import S3Writer


class S3Driver:
    name = "s3"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.client = S3Client(settings)
        self.bucket = settings.bucket
        self._presigner = Presigner(settings)

    @property
    def on_request(self) -> Callable[[str], None] | None:
        return self.client.on_request

    @on_request.setter
    def on_request(self, hook: Callable[[str], None] | None) -> None:
        self.client.on_request = hook

    # --- small objects ------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        return (await self.get_versioned(path))[0]

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        c = await self.client.c()
        async with self.client.call(path):
            r = await c.get_object(Bucket=self.bucket, Key=self.client.key(path))
            async with r["Body"] as body:
                return await body.read(), str(r["ETag"])

    async def put_content(self, path: str, data: bytes) -> None:
        await self.client.put(path, data)

    async def put_if(self, path: str, data: Pieces, version: str | None) -> str | None:
        """Conditional write: If-Match `version`, or If-None-Match * when None; the new
        ETag, or None when the condition failed."""
        c = await self.client.c()
        cond = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            async with self.client.call(path):
                r = await c.put_object(
                    Bucket=self.bucket,
                    Key=self.client.key(path),
                    Body=joined(data),
                    **cond,
                    **self.client.new_object,
                )
        except StorageUnavailable as exc:
            if precondition_failed(exc):
                return None
            raise
        except PathNotFound:
            return None  # If-Match on an object deleted meanwhile
        return str(r["ETag"])

    async def draft(self, path: str, beginning: Pieces) -> Draft | None:
        return None  # a PUT sends the object whole: nothing to gain by starting early

    async def stat(self, path: str, files_only: bool = False) -> FileInfo:
        c = await self.client.c()
        try:
            async with self.client.call(path):
                r = await c.head_object(Bucket=self.bucket, Key=self.client.key(path))
            mtime = r["LastModified"].timestamp()
            return FileInfo(path, int(r["ContentLength"]), mtime, version=str(r["ETag"]))
        except PathNotFound:
            if files_only:
                raise
        # S3 has no directories: a "directory" is a prefix with at least one key under it.
        async with self.client.call(path):
            r = await c.list_objects_v2(
                Bucket=self.bucket, Prefix=self.client.key(path).rstrip("/") + "/", MaxKeys=1
            )
        if r.get("KeyCount", 0) == 0:
            raise PathNotFound(path)
        return FileInfo(path, 0, 0.0, is_dir=True)

    async def list(self, path: str) -> list[str]:
        c = await self.client.c()
        prefix = self.client.key(path).rstrip("/") + "/" if path else self.client.prefix
        names: list[str] = []
        async with self.client.call(path):
            pages = c.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            async for page in pages:
                names += [p["Prefix"][len(prefix) :] for p in page.get("CommonPrefixes", [])]
                names += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
        names = [n for n in names if n]
        if not names:
            raise PathNotFound(path)
        return sorted(names)

    async def _keys_under(self, path: str) -> builtins.list[str]:
        c = await self.client.c()
        keys: builtins.list[str] = []
        async with self.client.call(path):
            pages = c.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.client.key(path).rstrip("/") + "/"
            )
            async for page in pages:
                keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    async def _subfolders(self, path: str, prefix: str) -> builtins.list[str]:
        c = await self.client.c()
        found: builtins.list[str] = []
        async with self.client.call(path):
            pages = c.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            async for page in pages:
                found += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return found

    async def delete(self, path: str) -> None:
        c = await self.client.c()
        try:
            info = await self.stat(path)
        except PathNotFound:
            # Maybe an emptied folder that SeaweedFS still lists: remove it, still report.
            await self._delete_folders(path)
            raise
        if not info.is_dir:
            with contextlib.suppress(PathNotFound):
                await states.abort(self.client, path)  # a writer's state: its parts go too
            await self.client.delete(path)
            return
        keys = await self._keys_under(path)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            async with self.client.call(path):
                await c.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        await self._delete_folders(path)

    async def _delete_folders(self, path: str) -> None:
        c = await self.client.c()
        # Some servers (SeaweedFS) keep emptied folders and list them as common prefixes:
        # delete their `dir/` keys too, deepest first (a no-op where folders do not exist).
        folders = [self.client.key(path).rstrip("/") + "/"]
        i = 0
        while i < len(folders):  # a breadth-first walk
            folders += await self._subfolders(path, folders[i])
            i += 1
        # SeaweedFS never lists folders named `.uploads` (its own multipart area has that
        # name), yet an emptied one keeps its parent alive: name them explicitly.
        folders += [f + ".uploads/" for f in folders]
        for folder in sorted(folders, key=lambda k: -k.count("/")):  # one by one, in order
            async with self.client.call(path):
                await c.delete_object(Bucket=self.bucket, Key=folder)

    async def move(self, src: str, dst: str) -> None:
        # No rename in S3: a server-side copy, then the source goes.
        await self.copy(src, dst)
        await self.client.delete(src)

    async def share(self, src: str, dst: str) -> bool:
        return False  # zot's zero-byte stubs would do it; ocireg does not write them

    async def copy(self, src: str, dst: str) -> None:
        """A server-side copy carrying the settings' encryption, class and ACL again (S3
        would give the copy the bucket's defaults). The metadata directive stays COPY: the
        sources are blobs and sealed sessions, which carry no metadata of ours to replace.
        Above `multipartcopythresholdsize` (at most CopyObject's 5 GiB) the copy goes part by
        part into a multipart upload, `multipartcopymaxconcurrency` parts at once."""
        c = await self.client.c()
        size = (await self.stat(src)).size
        source = {"Bucket": self.bucket, "Key": self.client.key(src)}
        if size <= self.settings.multipartcopythresholdsize or size == 0:
            async with self.client.call(src):
                await c.copy_object(
                    Bucket=self.bucket,
                    Key=self.client.key(dst),
                    CopySource=source,
                    **self.client.new_object,
                )
            return
        upload_id = await self.client.start_multipart(dst)
        try:
            parts = await self._copy_parts(src, dst, upload_id, size)
            async with self.client.call(dst):
                await c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.client.key(dst),
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            # An upload at a blob's key that no session names: nothing else would abort it.
            with contextlib.suppress(Exception):
                await self.client.abort_multipart(dst, upload_id)
            raise

    async def _copy_parts(
        self, src: str, dst: str, upload_id: str, size: int
    ) -> builtins.list[dict[str, Any]]:
        """UploadPartCopy of each range of `src`, some at once; the first failure stops the
        others and is raised (the source gone: PathNotFound, as the parts read it)."""
        c = await self.client.c()
        # S3 takes up to 10,000 parts: larger ranges for an object that needs more.
        step = max(self.settings.multipartcopychunksize, -(-size // s3writes.MAX_PARTS))
        source = {"Bucket": self.bucket, "Key": self.client.key(src)}
        slots = asyncio.Semaphore(
            min(self.settings.multipartcopymaxconcurrency, s3writes.MAX_COPY_CONCURRENCY)
        )

        async def one(number: int, start: int) -> dict[str, Any]:
            last = min(start + step, size) - 1
            async with slots, self.client.call(src):
                r = await c.upload_part_copy(
                    Bucket=self.bucket,
                    Key=self.client.key(dst),
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{last}",
                )
            return {"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]}

        tasks = [
            asyncio.create_task(one(n, start)) for n, start in enumerate(range(0, size, step), 1)
        ]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None, piece_size: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        # `piece_size` is not ours to choose: the pieces are those the HTTP response arrives in.
        if length == 0:
            return
        extra = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            extra["Range"] = f"bytes={offset}-{end}"
        _, stream = await self._get(path, **extra)
        async with contextlib.aclosing(stream):
            async for piece in stream:
                yield piece

    async def sized_reader(self, path: str) -> tuple[int, AsyncGenerator[bytes, None]]:
        return await self._get(path)

    async def _get(self, path: str, **extra: str) -> tuple[int, AsyncGenerator[bytes, None]]:
        """One GetObject: the length of what it answers, and its body's pieces."""
        c = await self.client.c()
        async with self.client.call(path):
            r = await c.get_object(Bucket=self.bucket, Key=self.client.key(path), **extra)
        stream = self._received(path, r["Body"])
        await anext(stream)  # inside the body's context now: closing the stream releases it
        return int(r["ContentLength"]), stream

    async def _received(self, path: str, body: Any) -> AsyncGenerator[bytes, None]:
        async with body, self.client.call(path):
            yield b""  # taken by `_get`, never by a reader
            async for piece in pieces(body):
                yield piece

    async def writer(self, path: str, append: bool = False) -> S3Writer:
        """A new object written in parts, visible at `path` after `commit`. S3 objects cannot
        grow: with `append`, the writer continues an object still being written, whose
        state a writer committed at `path` without making it visible (an upload session's,
        `S3Sessions`); PathNotFound if there is none."""
        if append:
            state = await states.load(self.client, path)
            if state is None or state.key is not None:
                # Already sealed, or a blob sent straight to its key: nothing can be appended.
                raise PathNotFound(path)
            return S3Writer(self.client, path, state)
        await states.save(self.client, path, UploadState())
        return S3Writer(self.client, path, UploadState(), seal_on_commit=True)

    def local_path(self, path: str) -> str | None:
        return None

    async def download_url(self, path: str) -> str | None:
        async with self.client.call(path):  # no credentials to sign with: unavailable, not a 500
            return await self._presigner.get_url(self.bucket, self.client.key(path))

    async def health(self) -> None:
        c = await self.client.c()
        try:
            async with self.client.call(""):
                await asyncio.wait_for(c.head_bucket(Bucket=self.bucket), timeout=10)
        except PathNotFound:
            raise StorageUnavailable(f"{self.client.where}: the bucket does not exist") from None

    async def close(self) -> None:
        await self._presigner.close()
        await self.client.close()
