"""The S3 client object that the driver, its writers and the upload-session store share: one
aiobotocore client per process (opened on first use), the bucket and the key of a path,
client errors turned into the driver's errors, and the object operations more than one of
them needs. Also the one place an aiobotocore client is made from the settings (the
presigner's too): credentials, region and addressing style."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import email.utils
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from ocireg import __version__
from ocireg.storage.base import InvalidPath, PathNotFound, StorageUnavailable
from ocireg.storage.s3.settings import S3Settings

Part = tuple[int, str, int]  # number, ETag, size


def addressing(settings: S3Settings, endpoint: str | None) -> dict[str, Any]:
    """The `s3` config entry of a client for `endpoint`: path-style or virtual-hosted bucket
    addresses, and AWS's accelerated or dual-stack endpoints when AWS's are used (botocore
    refuses a custom endpoint with acceleration)."""
    entry: dict[str, Any] = {"addressing_style": "path" if settings.forcepathstyle else "auto"}
    if endpoint is None:
        entry["use_accelerate_endpoint"] = settings.accelerate
        entry["use_dualstack_endpoint"] = settings.usedualstack
    return entry


def new_object_args(settings: S3Settings) -> dict[str, str]:
    """The parameters of every request that makes an object (PutObject, CreateMultipartUpload,
    CopyObject): distribution's `encrypt`, `keyid`, `storageclass` and `objectacl`. A copy
    needs them as much as a put: S3 gives the new object the bucket's defaults otherwise,
    whatever its source had."""
    args: dict[str, str] = {}
    if settings.encrypt:
        args["ServerSideEncryption"] = "aws:kms" if settings.keyid else "AES256"
        if settings.keyid:
            args["SSEKMSKeyId"] = settings.keyid
    if settings.storageclass:
        args["StorageClass"] = settings.storageclass
    if settings.objectacl:
        args["ACL"] = settings.objectacl
    return args


async def open_client(
    stack: contextlib.AsyncExitStack,
    settings: S3Settings,
    endpoint: str | None,
    config: Any,
    **options: Any,
) -> Any:
    """A client for `endpoint` with the settings' credentials, closed with `stack`;
    `options` go to `create_client` as they are (`use_ssl`, `verify`)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    # Two costs botocore adds to every request, measured at a tenth to a fifth of a small
    # request's CPU here: it parses each timestamp (a HEAD's Last-Modified, each listed
    # key's LastModified) with dateutil, ~0.15 ms apiece, and rebuilds its User-Agent from
    # some thirty parts twice per request (~0.1 ms each time) unless one is configured.
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_time
    )
    # `useragent` is appended, as distribution's SDK does with it.
    agent = AioConfig(user_agent=f"ocireg/{__version__}", user_agent_extra=settings.useragent)
    config = config.merge(agent)
    return await stack.enter_async_context(
        session.create_client(
            "s3",
            region_name=settings.region,
            endpoint_url=endpoint,
            aws_access_key_id=settings.accesskey,
            aws_secret_access_key=settings.secretkey,
            aws_session_token=settings.sessiontoken,
            config=config,
            **options,
        )
    )


def parse_time(text: str) -> datetime:
    """An S3 timestamp: ISO 8601 in XML bodies, an HTTP date in headers; anything else
    (never seen from S3) as botocore parses it."""
    try:
        if text[:1].isdigit():
            parsed = datetime.fromisoformat(text)
        else:
            parsed = email.utils.parsedate_to_datetime(text)
        # S3 gives UTC; a time without its zone (never seen) is read as UTC too.
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError):
        from botocore.utils import parse_timestamp

        return parse_timestamp(text)  # type: ignore[no-any-return]


class S3Client:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.new_object = new_object_args(settings)
        # Called with the operation's name for each request sent (the metrics count them).
        self.on_request: Callable[[str], None] | None = None
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def where(self) -> str:
        return f"S3 endpoint {self.settings.endpoint or 'AWS default'} bucket {self.bucket}"

    async def c(self) -> Any:
        """The aiobotocore client, opened on first use."""
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                from aiobotocore.config import AioConfig

                s = self.settings
                # Over TLS the body needs no SHA-256 in the signature (TLS protects it; AWS's
                # SDKs skip it there too when a checksum is sent): one hash pass less per
                # byte uploaded. Over plain HTTP the signature keeps covering the body.
                unsigned = {"payload_signing_enabled": False} if s.secure else {}
                config = AioConfig(
                    connect_timeout=3,
                    read_timeout=30,
                    retries={"max_attempts": 2, "mode": "standard"},
                    max_pool_connections=64,
                    s3={**addressing(s, s.endpoint), **unsigned},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                stack = contextlib.AsyncExitStack()
                client = await open_client(
                    stack, s, s.endpoint, config, use_ssl=s.secure, verify=not s.skipverify
                )
                client.meta.events.register("before-call.s3", self._before_call)
                _send_bodies_as_they_are(client)
                self._client = client
                self._stack = stack
        return self._client

    def _before_call(self, model: Any, **_: Any) -> None:
        """botocore's hook, once per S3 operation (its retries are not counted again)."""
        if self.on_request is not None:
            self.on_request(model.name)

    def key(self, path: str) -> str:
        if path.startswith("/") or "\x00" in path or any(p in (".", "..") for p in path.split("/")):
            raise InvalidPath(path)
        return self.prefix + path

    @contextlib.asynccontextmanager
    async def call(self, path: str) -> AsyncIterator[None]:
        """Map client errors: 404 -> PathNotFound, anything unreachable -> StorageUnavailable."""
        from aiohttp import ClientError as ConnectionFailed
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 404 or code in ("NoSuchKey", "NotFound", "404"):
                raise PathNotFound(path) from None
            raise StorageUnavailable(f"{self.where}: {code or status}") from exc
        # aiohttp's own errors reach here from a body read straight from its stream
        # (`download.pieces`): a connection lost or a body cut short mid-download.
        except (TimeoutError, BotoCoreError, OSError, ConnectionFailed) as exc:
            raise StorageUnavailable(f"{self.where}: {exc}") from exc

    # --- operations shared by the driver, the writers and the session store -------------

    async def head(self, path: str) -> dict[str, Any] | None:
        """The object's HeadObject answer, or None when there is none."""
        c = await self.c()
        try:
            async with self.call(path):
                head: dict[str, Any] = await c.head_object(Bucket=self.bucket, Key=self.key(path))
        except PathNotFound:
            return None
        return head

    async def has_bytes(self, path: str) -> bool:
        """An object with content is at `path` (not a zot dedupe stub, which is empty)."""
        head = await self.head(path)
        return head is not None and int(head["ContentLength"]) > 0

    async def put(
        self, path: str, data: bytes | bytearray, only_new: bool = False, **extra: Any
    ) -> bool:
        """PutObject; with `only_new`, only if no object is there yet: False when one was."""
        c = await self.c()
        cond = {"IfNoneMatch": "*"} if only_new else {}
        try:
            async with self.call(path):
                await c.put_object(
                    Bucket=self.bucket,
                    Key=self.key(path),
                    Body=data,
                    **cond,
                    **extra,
                    **self.new_object,
                )
        except StorageUnavailable as exc:
            if only_new and precondition_failed(exc):
                return False
            raise
        return True

    async def delete(self, path: str) -> None:
        """DeleteObject (an absent key is no error in S3)."""
        c = await self.c()
        async with self.call(path):
            await c.delete_object(Bucket=self.bucket, Key=self.key(path))

    async def delete_each(self, paths: list[str]) -> None:
        """Up to 1,000 keys in one DeleteObjects request (absent keys are no error). A key
        the server would not delete fails the call, as a DeleteObject of it would."""
        c = await self.c()
        objects = [{"Key": self.key(p)} for p in paths]
        async with self.call(paths[0]):
            r = await c.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        refused = [f"{e.get('Key')}: {e.get('Code')}" for e in r.get("Errors", [])]
        if refused:
            raise StorageUnavailable(f"{self.where}: not deleted: {', '.join(refused)}")

    async def start_multipart(self, path: str) -> str:
        """CreateMultipartUpload at `path`, shielded: a caller cancelled while S3 makes the
        upload waits for its id and aborts it. S3 may have made it before the cancellation
        arrived, and nothing names it yet (at a blob's key, nothing ever would)."""
        start = asyncio.ensure_future(self._create_multipart(path))
        try:
            return await asyncio.shield(start)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.abort_multipart(path, await start)
            raise

    async def _create_multipart(self, path: str) -> str:
        c = await self.c()
        async with self.call(path):
            r = await c.create_multipart_upload(
                Bucket=self.bucket, Key=self.key(path), **self.new_object
            )
        return str(r["UploadId"])

    async def send_part(
        self, path: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> str:
        c = await self.c()
        async with self.call(path):
            r = await c.upload_part(
                Bucket=self.bucket,
                Key=self.key(path),
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
        return str(r["ETag"])

    async def complete(
        self, path: str, upload_id: str, parts: builtins.list[Part], only_new: bool = False
    ) -> bool:
        """Complete the multipart upload at `path`; with `only_new`, only if no object is
        there yet (If-None-Match, which SeaweedFS honours): False when one was."""
        c = await self.c()
        cond = {"IfNoneMatch": "*"} if only_new else {}
        try:
            async with self.call(path):
                await c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key(path),
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]},
                    **cond,
                )
        except StorageUnavailable as exc:
            if only_new and precondition_failed(exc):
                return False
            raise
        return True

    async def abort_multipart(self, path: str, upload_id: str) -> None:
        c = await self.c()
        async with self.call(path):
            await c.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key(path), UploadId=upload_id
            )

    async def multipart_uploads(self, prefix: str) -> builtins.list[tuple[str, str, float]]:
        """(key, upload id, initiated) of the multipart uploads open under a key prefix."""
        c = await self.c()
        found: builtins.list[tuple[str, str, float]] = []
        async with self.call(prefix):
            pages = c.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            async for page in pages:
                found += [
                    (u["Key"], u["UploadId"], u["Initiated"].timestamp())
                    for u in page.get("Uploads", [])
                ]
        return found

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None


def precondition_failed(exc: StorageUnavailable) -> bool:
    """The request failed on its condition (If-Match / If-None-Match): 409 or 412."""
    from botocore.exceptions import ClientError

    cause = exc.__cause__
    return isinstance(cause, ClientError) and (
        cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)
    )


def _send_bodies_as_they_are(client: Any) -> None:
    """botocore wraps the `bytes` body of a PutObject or UploadPart in a BytesIO, which aiohttp
    then reads 64 KiB per thread-pool job (16 thread hops per MiB). As `bytes`, a body is
    written at once, for less client CPU at the same rate (docs/performance.md, "S3 uploads
    straight to the blob key"). (Only file-like bodies get `Expect: 100-continue`
    or need rewinding for a retry; bytes are simply sent again.)"""
    from botocore.handlers import convert_body_to_file_like_object

    for operation in ("PutObject", "UploadPart"):
        client.meta.events.unregister(
            f"before-parameter-build.s3.{operation}", convert_body_to_file_like_object
        )
