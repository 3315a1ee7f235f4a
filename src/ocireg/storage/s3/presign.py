"""Presigned download URLs for blob redirects (`storage.redirectBlobURL`).

Signing needs no request to S3: a client of its own, made once per process, signs for
`redirect_endpoint` (the address clients use), which may differ from the endpoint the driver
talks to. SigV4 always: botocore would presign the legacy SigV2 form for a custom endpoint,
which AWS regions opened since 2014 refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ocireg.storage.s3.client import addressing, open_client
from ocireg.storage.s3.settings import S3Settings

# As long as distribution's redirects live: enough for a slow client to start a big layer
# (the URL must be valid when the GET starts, not when it ends), short enough that a URL
# copied out of a log is soon worthless.
URL_LIFETIME = 20 * 60


class Presigner:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def _c(self) -> Any:
        async with self._lock:
            if self._client is None:
                from aiobotocore.config import AioConfig

                s = self.settings
                stack = contextlib.AsyncExitStack()
                endpoint = s.redirect_endpoint
                config = AioConfig(signature_version="s3v4", s3=addressing(s, endpoint))
                self._client = await open_client(stack, s, endpoint, config)
                self._stack = stack
        return self._client

    async def get_url(self, bucket: str, key: str) -> str:
        """A URL that GETs `key` without credentials for URL_LIFETIME seconds."""
        c = await self._c()
        url: str = await c.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=URL_LIFETIME
        )
        return url

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None
