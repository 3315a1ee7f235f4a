"""Workload 5, the cluster hop, inside the main table: the functions of bench/cluster_hop.py
(push, pull, peak RSS) run with the harness's sizes and repetitions.

bench/cluster_hop.py stays a standalone script; this adapter only calls it. The via-member
figure goes in the ocireg column and the direct-to-owner figure in the comparison column, so
the ratio column is hop/direct (goal >= 0.8).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core import Context, MiB, Row, failed_note, median

if TYPE_CHECKING:
    from tests.support.server import RegistryProcess

TITLE = "5 cluster hop"
RSS_LIMIT_MIB = 128


def _log_size(member: RegistryProcess) -> int:
    try:
        return member.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def _complaints(member: RegistryProcess, since: int) -> list[str]:
    """The member's log lines after byte `since` that are not info-level access lines."""
    try:
        with member.log_path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    keep = ("warning", "error", "critical", "traceback", "exit", "spawn")
    return [
        f"{member.name}: {line.strip()[:240]}"
        for line in text.splitlines()
        if any(word in line.lower() for word in keep)
    ]


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
                    marks = [_log_size(m) for m in (proxy, owner)]
                    try:
                        if op == "push":
                            runs[name].append(hop.push(member, repo, piece, size, digest))
                        else:
                            runs[name].append(hop.pull(member, repo, size, digest))
                    except (OSError, AssertionError) as exc:  # reported, not fatal
                        # The client only sees a broken connection; the members' own
                        # warnings and errors from this run say which side gave up and why.
                        said = _complaints(proxy, marks[0]) + _complaints(owner, marks[1])
                        failures.append((op, f"rep {rep} {name}: {exc!r}"[:160]))
                        if said:
                            failures.append((op, f"member logs: {' / '.join(said)}"[:600]))
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
            note="comparison column: the same request straight to the owner; 1 worker/member"
            + failed_note(failures, op),
        )
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
