"""The state of an S3 object still being written, which lets any process resume its writer.

S3 objects cannot grow, so a writer that may be continued later (an upload session's, or
`S3Driver.writer`) keeps its state in one object at its own key, marked with the
`ocireg-upload` metadata: the multipart upload id, the parts sent, and the tail of fewer
than 5 MiB bytes that S3 does not accept as a part yet. Writes of the state are conditional
(If-Match), so two writers of one object cannot both win. `seal` turns it into an ordinary
object holding the bytes.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from ocireg.storage.base import PathNotFound, StorageUnavailable
from ocireg.storage.s3.client import Part, S3Client

MARK = "ocireg-upload"
SIZE = "ocireg-size"


@dataclass
class UploadState:
    upload_id: str | None = None
    parts: list[Part] = field(default_factory=list)
    tail: bytes = b""
    etag: str | None = None  # of the state object, for the conditional rewrite
    # Where the multipart upload is when not at the state's own key: a blob streamed
    # straight to its final key (`DirectWriter`); such a state takes no appends.
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
    def parse(cls, data: bytes, etag: str | None) -> UploadState:
        head, _, tail = data.partition(b"\n")
        doc = json.loads(head)
        parts = [tuple(p) for p in doc["parts"]]
        return cls(doc.get("uploadId"), parts, tail, etag, doc.get("key"))


def is_state(head: dict[str, Any]) -> bool:
    """A HeadObject/GetObject answer is of a state object."""
    return bool(head.get("Metadata", {}).get(MARK) == "1")


async def save(client: S3Client, path: str, state: UploadState) -> None:
    c = await client.c()
    cond = {"IfMatch": state.etag} if state.etag else {}
    async with client.call(path):
        r = await c.put_object(
            Bucket=client.bucket,
            Key=client.key(path),
            Body=state.dump(),
            Metadata={MARK: "1", SIZE: str(state.size)},
            **cond,
            **client.new_object,  # it holds bytes of the blob (its tail): encrypted too
        )
    state.etag = str(r["ETag"])


async def load(client: S3Client, path: str) -> UploadState | None:
    """The state at `path`, or None when `path` is an ordinary object (a sealed one)."""
    return (await peek(client, path))[0]


async def peek(client: S3Client, path: str) -> tuple[UploadState | None, int]:
    """The state at `path` and its size; for an ordinary object (a sealed one) None and
    its size, without reading its bytes. PathNotFound if nothing."""
    c = await client.c()
    async with client.call(path):
        r = await c.get_object(Bucket=client.bucket, Key=client.key(path))
        async with r["Body"] as body:
            if not is_state(r):  # possibly a whole blob: closed unread
                return None, int(r["ContentLength"])
            data = await body.read()
    state = UploadState.parse(data, str(r["ETag"]))
    return state, state.size


async def size(client: S3Client, path: str) -> int:
    """Bytes written so far at `path` (committed, for a state); PathNotFound if nothing."""
    c = await client.c()
    async with client.call(path):
        r = await c.head_object(Bucket=client.bucket, Key=client.key(path))
    return int(r["Metadata"][SIZE]) if is_state(r) else int(r["ContentLength"])


async def seal(client: S3Client, path: str, state: UploadState | None = None) -> None:
    """Turn the state at `path` into an ordinary object holding its bytes."""
    state = state or await load(client, path)
    if state is None:
        return
    if state.upload_id is None:
        await client.put(path, state.tail)
        return
    parts = list(state.parts)
    if state.tail:
        n = len(parts) + 1
        parts.append((n, await client.send_part(path, state.upload_id, n, state.tail), 0))
    await client.complete(path, state.upload_id, parts)


async def abort(client: S3Client, path: str, state: UploadState | None = None) -> None:
    """Abort the multipart upload of the state at `path` (`state`, when it was just read), if
    it is one and has one; PathNotFound if nothing is at `path`."""
    state = state or await load(client, path)
    if state is not None and state.upload_id:
        with contextlib.suppress(PathNotFound, StorageUnavailable):
            await client.abort_multipart(state.key or path, state.upload_id)
