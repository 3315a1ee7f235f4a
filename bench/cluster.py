"""Workload 5, the cluster hop, inside the main table: the functions of bench/cluster_hop.py
(push, pull, peak RSS) run with the harness's sizes and repetitions.

bench/cluster_hop.py stays a standalone script; this adapter only calls it. The via-member
figure goes in the ocireg column and the direct-to-owner figure in the comparison column, so
the ratio column is hop/direct (goal >= 0.8).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.core import Context, MiB, Row, median

TITLE = "5 cluster hop"
RSS_LIMIT_MIB = 128


def run(ctx: Context) -> list[Row]:
    from bench import cluster_hop as hop  # imports tests.support: only when the workload runs
    from tests.support.cluster import repo_owned_by, running_cluster

    size = ctx.sizes.blob
    piece, digest = hop._payload(size)
    runs: dict[str, list[float]] = {"push": [], "push via": [], "pull": [], "pull via": []}
    failures: list[tuple[str, str]] = []  # (op, what happened)
    with (
        tempfile.TemporaryDirectory(prefix="hop-", dir=ctx.workdir) as tmp,
        running_cluster(Path(tmp), count=2, workers=1) as (proxy, owner),
    ):
        direct_repo = repo_owned_by(1, count=2, prefix="bench/direct")
        hop_repo = repo_owned_by(1, count=2, prefix="bench/hop")
        for rep in range(ctx.sizes.reps):
            # Alternate which path goes first, as the other workloads alternate registries.
            for via in (False, True) if rep % 2 == 0 else (True, False):
                member, repo, key = (proxy, hop_repo, "via") if via else (owner, direct_repo, "")
                for op in ("push", "pull"):
                    name = f"{op} {key}".strip()
                    try:
                        if op == "push":
                            runs[name].append(hop.push(member, repo, piece, size, digest))
                        else:
                            runs[name].append(hop.pull(member, repo, size, digest))
                    except (OSError, AssertionError) as exc:  # reported, not fatal
                        failures.append((op, f"rep {rep} {name}: {exc!r}"[:160]))
        rss = hop.peak_rss_mib(proxy)
    to_mib = 1e6 / MiB  # cluster_hop reports MB/s
    rows = []
    for op in ("push", "pull"):
        row = Row(
            TITLE,
            f"{op} {size // MiB} MiB via non-owner",
            "MiB/s",
            ocireg=(median(runs[f"{op} via"]) or 0) * to_mib,
            peer=(median(runs[op]) or 0) * to_mib,
            goal=0.8,
            vs="owner direct",
            runs={"via": runs[f"{op} via"], "direct": runs[op]},
            note="comparison column: the same request straight to the owner; 1 worker/member",
        )
        failed = [text for kind, text in failures if kind == op]
        if failed:
            row.note += f"; FAILED runs: {'; '.join(failed)}"
        rows.append(row)
    rows.append(
        Row(
            TITLE,
            "proxy peak RSS (VmHWM)",
            "MiB",
            ocireg=rss,
            note=f"largest worker of the proxying member; goal < {RSS_LIMIT_MIB} MiB"
            + (" ok" if rss < RSS_LIMIT_MIB else " MISS"),
        )
    )
    return rows
