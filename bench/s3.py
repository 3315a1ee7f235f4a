"""Workload 7, S3 storage, inside the main table: the functions of bench/s3_vs_fs.py (one
ocireg on the S3 driver over a SeaweedFS on loopback, one on the filesystem driver; push,
pull, peak RSS) run with the harness's sizes and repetitions.

bench/s3_vs_fs.py stays a standalone script; this adapter only calls it. The S3 figure goes
in the ocireg column and the filesystem figure in the comparison column, so the ratio column
is S3/filesystem. No goal there: SeaweedFS shares the machine with ocireg and the client, so
the figure says what this setup gives, not what an S3 service would. Two more rows hold the
same S3 push and pull against a plain S3 client (bench/plain_s3.py) moving the same blob to
and from the same bucket in the same runs: the S3 limit here, with the issue's goal of 0.8.
Manifest reads are also measured on a third instance, S3 with the embedded sqlite store and
`solewriter`, in the same runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.core import Context, MiB, Row, failed_note, median

TITLE = "7 S3 storage"
WORKERS = 1  # per instance, as in bench/s3_vs_fs.py and the cluster hop


def run(ctx: Context) -> list[Row]:
    from bench import plain_s3, s3_vs_fs  # imports tests.support: only when the workload runs
    from bench.cluster_hop import _payload

    size = ctx.sizes.blob
    piece, digest = _payload(size)
    with (
        tempfile.TemporaryDirectory(prefix="s3-", dir=ctx.workdir) as tmp,
        s3_vs_fs.instances(Path(tmp), WORKERS) as procs,
    ):
        result = s3_vs_fs.measure(procs, ctx.sizes.reps, size, piece, digest)
        images = max(20, ctx.sizes.images // 2)
        small = s3_vs_fs.measure_small(procs, ctx.sizes.reps, images)
        with s3_vs_fs.sole_sqlite(Path(tmp), procs["s3"]) as sq:
            reads = s3_vs_fs.measure_manifests(
                {**procs, s3_vs_fs.SQLITE: sq},
                ctx.sizes.reps,
                ctx.sizes.connections,
                ctx.sizes.duration,
            )
        with s3_vs_fs.redirecting(Path(tmp), procs["s3"]) as proc:
            redirected = s3_vs_fs.measure_redirect(proc, ctx.sizes.reps, size, piece, digest)
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
    for op, what in (("push", "upload"), ("pull", "download")):
        s3_runs = [v * to_mib for v in result.runs[f"{op} s3"]]
        plain = [v * to_mib for v in result.runs[f"{op} {s3_vs_fs.PLAIN}"]]
        rows.append(
            Row(
                TITLE,
                f"{op} {size // MiB} MiB on S3 vs a plain S3 client",
                "MiB/s",
                ocireg=median(s3_runs),
                peer=median(plain),
                goal=0.8,
                vs=s3_vs_fs.PLAIN,
                runs={"s3": s3_runs, s3_vs_fs.PLAIN: plain},
                note=f"comparison column: aiobotocore's own {what} of the same blob to/from the"
                f" same bucket in the same runs ({what}: "
                + (
                    f"multipart, {plain_s3.PART // MiB} MiB parts, {plain_s3.INFLIGHT} at once)"
                    if op == "push"
                    else "one GET read as a stream)"
                )
                + failed_note([f for f in result.failures if s3_vs_fs.PLAIN in f[1]], op),
            )
        )
    rows.append(_redirect_row(size, redirected, rows[1]))
    for op, how in (
        ("push", "HEAD, POST, PATCH, PUT per blob"),
        ("pull", "the manifest by tag, a GET per blob"),
    ):
        cpu = {d: median(v) or 0.0 for d, v in small.cpu[op].items()}
        rows.append(
            Row(
                TITLE,
                f"{op} small images on S3 ({how})",
                "images/s",
                ocireg=median(small.rates[op]["s3"]),
                peer=median(small.rates[op]["filesystem"]),
                vs="filesystem",
                runs=small.rates[op],
                note=f"{images} images of a config and 3 x {s3_vs_fs.SMALL_LAYER >> 10} KiB,"
                f" {s3_vs_fs.SMALL_CLIENTS} clients, as skopeo/podman/docker/crane {op};"
                f" server CPU per image {cpu['s3']:.0f} ms on S3, {cpu['filesystem']:.1f} ms"
                f" on the filesystem; {WORKERS} worker/instance",
            )
        )
    for method, tool in (("GET", "wrk"), ("HEAD", "ab -k")):
        for store, driver in (("Redis", "s3"), ("sqlite", s3_vs_fs.SQLITE)):
            runs = {d: reads[f"{method} {d}"] for d in (driver, "filesystem")}
            rows.append(
                Row(
                    TITLE,
                    f"manifest {method} by tag on S3 + {store} ({tool})",
                    "req/s",
                    ocireg=median(runs[driver]),
                    peer=median(runs["filesystem"]),
                    vs="filesystem",
                    goal=0.5,  # issue #14: at least half of the filesystem figure
                    runs=runs,
                    note=f"{ctx.sizes.connections} connections, {ctx.sizes.duration:g} s;"
                    f" comparison column: the filesystem driver; {WORKERS} worker/instance"
                    + ("; storageDriver.solewriter" if store == "sqlite" else ""),
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


def _redirect_row(size: int, redirected: tuple[list[float], list[str]], pull: Row) -> Row:
    """The same blob pulled by following `storage.redirectBlobURL`'s 307: the client reads
    from SeaweedFS itself; compared with the pull through ocireg (`pull`'s S3 runs)."""
    values, failures = redirected
    runs = {"redirect": [v * 1e6 / MiB for v in values], "through ocireg": pull.runs["s3"]}
    return Row(
        TITLE,
        f"pull {size // MiB} MiB on S3, redirect",
        "MiB/s",
        ocireg=median(runs["redirect"]),
        peer=pull.ocireg,
        vs="S3 pull through ocireg",
        runs=runs,
        note="storage.redirectBlobURL: GET answered 307, the client follows the presigned URL"
        " to SeaweedFS (both hops timed); comparison column: the pull row's S3 figure"
        + failed_note([("pull", f) for f in failures], "pull"),
    )
