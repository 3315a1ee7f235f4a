"""Workload 7, S3 storage, inside the main table: the functions of bench/s3_vs_fs.py (one
ocireg on the S3 driver over a SeaweedFS on loopback, one on the filesystem driver; push,
pull, peak RSS) run with the harness's sizes and repetitions.

bench/s3_vs_fs.py stays a standalone script; this adapter only calls it. The S3 figure goes
in the ocireg column and the filesystem figure in the comparison column, so the ratio column
is S3/filesystem. No goal: SeaweedFS shares the machine with ocireg and the client, so the
figure says what this setup gives, not what an S3 service would.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.core import Context, MiB, Row, failed_note, median

TITLE = "7 S3 storage"
WORKERS = 1  # per instance, as in bench/s3_vs_fs.py and the cluster hop


def run(ctx: Context) -> list[Row]:
    from bench import s3_vs_fs  # imports tests.support: only when the workload runs
    from bench.cluster_hop import _payload

    size = ctx.sizes.blob
    piece, digest = _payload(size)
    with (
        tempfile.TemporaryDirectory(prefix="s3-", dir=ctx.workdir) as tmp,
        s3_vs_fs.instances(Path(tmp), WORKERS) as procs,
    ):
        result = s3_vs_fs.measure(procs, ctx.sizes.reps, size, piece, digest)
        reads = s3_vs_fs.measure_manifests(
            procs, ctx.sizes.reps, ctx.sizes.connections, ctx.sizes.duration
        )
    to_mib = 1e6 / MiB  # s3_vs_fs (cluster_hop's push and pull) reports MB/s
    rows: list[Row] = []
    for op in ("push", "pull"):
        runs = {d: [v * to_mib for v in result.runs[f"{op} {d}"]] for d in s3_vs_fs.DRIVERS}
        rows.append(
            Row(
                TITLE,
                f"{op} {size // MiB} MiB on S3",
                "MiB/s",
                ocireg=median(runs["s3"]),
                peer=median(runs["filesystem"]),
                vs="filesystem",
                runs=runs,
                note=f"comparison column: the same {op} on the filesystem driver; SeaweedFS"
                f" (weed server -s3) on loopback; {WORKERS} worker/instance"
                + failed_note(result.failures, op),
            )
        )
    for method, tool in (("GET", "wrk"), ("HEAD", "ab -k")):
        runs = {d: reads[f"{method} {d}"] for d in s3_vs_fs.DRIVERS}
        rows.append(
            Row(
                TITLE,
                f"manifest {method} by tag on S3 + Redis ({tool})",
                "req/s",
                ocireg=median(runs["s3"]),
                peer=median(runs["filesystem"]),
                vs="filesystem",
                goal=0.5,  # issue #14: at least half of the filesystem figure
                runs=runs,
                note=f"{ctx.sizes.connections} connections, {ctx.sizes.duration:g} s;"
                f" comparison column: the filesystem driver; {WORKERS} worker/instance",
            )
        )
    rows.append(
        Row(
            TITLE,
            "S3 worker peak RSS (VmHWM)",
            "MiB",
            ocireg=result.rss["s3"],
            peer=result.rss["filesystem"],
            vs="filesystem",
            note="largest worker of the S3 instance after all runs; comparison column:"
            " the filesystem instance's",
        )
    )
    return rows
