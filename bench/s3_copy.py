"""The final server-side copy of a chunked upload on S3 (SeaweedFS on loopback): one
`CopyObject`, what `S3Driver.copy` sends for objects up to 5 GiB, against `UploadPartCopy`
of ranges, a few at a time, into a multipart upload at the destination key.

    python bench/s3_copy.py [--sizes-mib 256,1024] [--runs 5]

The source is written as a chunked session leaves it: a multipart upload of 6 MiB parts
completed at its own key. Each run copies it once by every method, the methods taking turns
at going first; the copy is deleted after each. Prints seconds per run and medians.
Standalone: needs only the package and tests/support (run from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from bench.core import median  # noqa: E402
from bench.plain_s3 import _client  # noqa: E402
from tests.support.backends import running_seaweedfs  # noqa: E402

SESSION_PART = 6 << 20  # storage/s3/writer.py's part size
# (range MiB, ranges in flight) of the UploadPartCopy variants
RANGED = ((32, 8), (64, 4), (128, 2), (256, 4))


async def _source(c: Any, bucket: str, key: str, size: int) -> None:
    piece = os.urandom(SESSION_PART)
    mpu = await c.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, off in enumerate(range(0, size, SESSION_PART), 1):
        body = piece[: min(SESSION_PART, size - off)]
        r = await c.upload_part(
            Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=n, Body=body
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    await c.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts}
    )


async def _copy_object(c: Any, bucket: str, src: str, dst: str, size: int) -> None:
    await c.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src})


async def _part_copy(
    c: Any, bucket: str, src: str, dst: str, size: int, part: int, inflight: int
) -> None:
    mpu = await c.create_multipart_upload(Bucket=bucket, Key=dst)
    gate = asyncio.Semaphore(inflight)

    async def one(n: int, start: int) -> dict[str, Any]:
        async with gate:
            r = await c.upload_part_copy(
                Bucket=bucket,
                Key=dst,
                UploadId=mpu["UploadId"],
                PartNumber=n,
                CopySource={"Bucket": bucket, "Key": src},
                CopySourceRange=f"bytes={start}-{min(start + part, size) - 1}",
            )
            return {"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]}

    parts = await asyncio.gather(
        *(one(n, start) for n, start in enumerate(range(0, size, part), 1))
    )
    await c.complete_multipart_upload(
        Bucket=bucket, Key=dst, UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts}
    )


async def measure(driver: dict[str, Any], sizes: list[int], runs: int) -> dict[str, list[float]]:
    bucket = driver["bucket"]
    out: dict[str, list[float]] = {}
    async with _client(driver, pool=16) as c:
        for size in sizes:
            src = f"copybench/src-{size}"
            await _source(c, bucket, src, size)
            methods: dict[str, Any] = {"CopyObject": _copy_object}
            for mib, inflight in RANGED:
                if mib << 20 < size:

                    async def ranged(*a: Any, p: int = mib << 20, k: int = inflight) -> None:
                        await _part_copy(*a, part=p, inflight=k)

                    methods[f"UploadPartCopy {mib} MiB x{inflight}"] = ranged
            names = list(methods)
            for rep in range(runs):
                turn = rep % len(names)
                for name in names[turn:] + names[:turn]:
                    dst = f"copybench/dst-{size}"
                    started = time.perf_counter()
                    await methods[name](c, bucket, src, dst, size)
                    took = time.perf_counter() - started
                    head = await c.head_object(Bucket=bucket, Key=dst)
                    assert head["ContentLength"] == size, head
                    await c.delete_object(Bucket=bucket, Key=dst)
                    out.setdefault(f"{size >> 20} MiB {name}", []).append(took)
                    print(f"{size >> 20} MiB rep {rep} {name}: {took:.2f} s", flush=True)
            await c.delete_object(Bucket=bucket, Key=src)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes-mib", default="256,1024")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [int(s) << 20 for s in args.sizes_mib.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="s3-copy-") as tmp,
        running_seaweedfs(Path(tmp)) as weed,
    ):
        result = asyncio.run(measure(weed.storage_driver("/bench"), sizes, args.runs))
    print(f"medians of {args.runs} runs, seconds (runs)")
    for name, values in result.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:40} {median(values):6.2f}  ({runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
