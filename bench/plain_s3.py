"""The S3 limit of this machine: a plain S3 client (aiobotocore, no registry in between)
moving the same blob straight to and from the same bucket as the registry under test.

The upload is one multipart upload in PART pieces with INFLIGHT parts on the wire at once
(boto3's transfer manager uses 8 MiB parts too); the download one GET read as a stream.
Both return MB/s (1e6 bytes), like bench/cluster_hop.py's push and pull.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

PART = 8 << 20
INFLIGHT = 4
READ = 1 << 20


def _client(driver: dict[str, Any], pool: int = INFLIGHT + 2) -> Any:
    """An aiobotocore client context for a zot-style `storage.storageDriver` map, with up
    to `pool` connections."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3",
        region_name=driver.get("region", "us-east-1"),
        endpoint_url=driver["regionendpoint"],
        aws_access_key_id=driver["accesskey"],
        aws_secret_access_key=driver["secretkey"],
        config=AioConfig(
            s3={"addressing_style": "path"},
            max_pool_connections=pool,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _parts(size: int) -> list[tuple[int, int, int]]:
    """(part number, offset, length) covering `size` bytes."""
    return [(n, off, min(PART, size - off)) for n, off in enumerate(range(0, size, PART), 1)]


def _part_bytes(piece: bytes, offset: int, length: int) -> bytes:
    """Bytes [offset, offset + length) of `piece` repeated (the bench's payload)."""
    out = bytearray()
    while len(out) < length:
        at = (offset + len(out)) % len(piece)
        out += piece[at : at + length - len(out)]
    return bytes(out)


async def _put(driver: dict[str, Any], key: str, piece: bytes, size: int) -> float:
    bucket = driver["bucket"]
    async with _client(driver) as c:
        started = time.perf_counter()
        mpu = await c.create_multipart_upload(Bucket=bucket, Key=key)
        gate = asyncio.Semaphore(INFLIGHT)

        async def one(number: int, offset: int, length: int) -> dict[str, Any]:
            async with gate:  # the part's bytes exist only while it is on the wire
                r = await c.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=mpu["UploadId"],
                    PartNumber=number,
                    Body=_part_bytes(piece, offset, length),
                )
                return {"PartNumber": number, "ETag": r["ETag"]}

        parts = await asyncio.gather(*(one(*p) for p in _parts(size)))
        await c.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts}
        )
        return size / (time.perf_counter() - started) / 1e6


async def _get(driver: dict[str, Any], key: str, size: int) -> float:
    async with _client(driver) as c:
        started = time.perf_counter()
        r = await c.get_object(Bucket=driver["bucket"], Key=key)
        received = 0
        async with r["Body"] as body:
            async for chunk in body.iter_chunks(READ):
                received += len(chunk)
        elapsed = time.perf_counter() - started
        assert received == size, (received, size)
        await c.delete_object(Bucket=driver["bucket"], Key=key)
        return size / elapsed / 1e6


def push_pull(driver: dict[str, Any], piece: bytes, size: int) -> tuple[float, float]:
    """Upload the blob to a fresh key of the registry's bucket, download it, delete it:
    (upload MB/s, download MB/s)."""
    key = f"bench-plain/{uuid.uuid4().hex}"
    up = asyncio.run(_put(driver, key, piece, size))
    down = asyncio.run(_get(driver, key, size))
    return up, down
