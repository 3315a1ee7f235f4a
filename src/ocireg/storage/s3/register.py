"""The register of open upload sessions on S3: an empty object at `<dir>-sessions/<id>`
(so `<repo>/.uploads-sessions/<id>`) from a session's creation until it ends, because
SeaweedFS never lists a folder named `.uploads` (its own multipart area has that name).
Garbage collection finds every session from here (`S3Sessions.list`)."""

from __future__ import annotations

from ocireg.storage.s3.client import S3Client

SUFFIX = "-sessions"  # `<repo>/.uploads` -> `<repo>/.uploads-sessions`


def entry(path: str) -> str:
    """The register entry of the session at `path`."""
    folder, _, name = path.rpartition("/")
    return f"{folder}{SUFFIX}/{name}"


class Register:
    def __init__(self, client: S3Client) -> None:
        self.client = client

    async def add(self, path: str) -> None:
        await self.client.put(entry(path), b"")

    async def remove(self, path: str) -> None:
        await self.client.delete(entry(path))

    async def end(self, path: str) -> None:
        """Drop the session's state and its entry (absent ones are no error in S3), in one
        request: every upload ends here."""
        await self.client.delete_each([path, entry(path)])

    async def entries(self, directory: str) -> dict[str, float]:
        """Session name -> when its entry was written, for the sessions of `directory`."""
        client = self.client
        c = await client.c()
        prefix = client.key(directory + SUFFIX) + "/"
        stamps: dict[str, float] = {}
        async with client.call(directory):
            pages = c.get_paginator("list_objects_v2").paginate(
                Bucket=client.bucket, Prefix=prefix, Delimiter="/"
            )
            async for page in pages:
                for o in page.get("Contents", []):
                    name = o["Key"][len(prefix) :]
                    if name:  # SeaweedFS lists an emptied folder as its own `dir/` key
                        stamps[name] = o["LastModified"].timestamp()
        return stamps
