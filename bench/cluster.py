"""Workload 5, the cluster hop, inside the main table: the functions of bench/cluster_hop.py
(push, pull, peak RSS) run with the harness's sizes and repetitions, on three setups of two
members: one shared root and one shared SeaweedFS bucket (reads and uploads are answered by
the member that receives them: goal >= 0.95 of the direct path) and separate roots (zot's
model: every byte hops through the non-owner: goal >= 0.8).

bench/cluster_hop.py stays a standalone script; this adapter only calls it. The via-member
figure goes in the ocireg column and the direct-to-owner figure in the comparison column, so
the ratio column is via/direct.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import urllib.request
from collections.abc import Iterator
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


# (label in the table, member storage, goal for via-member / direct)
SETUPS = (
    ("shared root", "shared", 0.95),
    ("shared S3", "s3", 0.95),
    ("separate roots", "separate", 0.8),
)


@contextlib.contextmanager
def _members(workdir: Path, storage: str) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    """Two members, one worker each: (the non-owner, the owner of the bench repositories).
    On shared storage, yielded once the non-owner knows the owner shares its storage (until
    then it forwards everything, as with separate storage)."""
    from tests.support.backends import running_seaweedfs
    from tests.support.cluster import cluster_configs, start_members
    from tests.support.server import wait_until

    with contextlib.ExitStack() as stack:
        configs = cluster_configs(workdir, count=2, shared_root=storage == "shared")
        if storage == "s3":
            (workdir / "weed").mkdir()
            weed = stack.enter_context(running_seaweedfs(workdir / "weed"))
            for i, cfg in enumerate(configs):
                cfg["storage"]["rootDirectory"] = str(workdir / f"local-{i}")
                cfg["storage"]["storageDriver"] = weed.storage_driver("/hop")
        proxy, owner = start_members(workdir, configs)
        stack.callback(owner.stop)
        stack.callback(proxy.stop)
        if storage != "separate":
            wait_until(lambda: _sees_shared(proxy), timeout=30)
        yield proxy, owner


def _sees_shared(member: RegistryProcess) -> bool:
    status = json.loads(urllib.request.urlopen(f"{member.url}/v2/_ocireg/cluster").read())
    return all(m["shared"] for m in status["members"])


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    rss = 0.0
    for label, storage, goal in SETUPS:
        runs, failures, peak = _measure(ctx, storage)
        if storage == "separate":
            rss = peak  # the setup where the non-owner proxies every byte
        size = ctx.sizes.blob
        to_mib = 1e6 / MiB  # cluster_hop reports MB/s
        for op in ("push", "pull"):
            rows.append(
                Row(
                    TITLE,
                    f"{op} {size // MiB} MiB via non-owner, {label}",
                    "MiB/s",
                    ocireg=(median(runs[f"{op} via"]) or 0) * to_mib,
                    peer=(median(runs[op]) or 0) * to_mib,
                    goal=goal,
                    vs="owner direct",
                    runs={"via": runs[f"{op} via"], "direct": runs[op]},
                    note="comparison column: the same request straight to the owner; "
                    "1 worker/member" + failed_note(failures, op),
                )
            )
    rows.append(
        Row(
            TITLE,
            "proxy peak RSS (VmHWM)",
            "MiB",
            ocireg=rss,
            note="largest worker of the proxying member (separate roots); "
            f"goal < {RSS_LIMIT_MIB} MiB" + (" ok" if rss < RSS_LIMIT_MIB else " MISS"),
        )
    )
    return rows


def _measure(
    ctx: Context, storage: str
) -> tuple[dict[str, list[float]], list[tuple[str, str]], float]:
    from bench import cluster_hop as hop  # imports tests.support: only when the workload runs
    from tests.support.cluster import repo_owned_by

    size = ctx.sizes.blob
    piece, digest = hop._payload(size)
    runs: dict[str, list[float]] = {"push": [], "push via": [], "pull": [], "pull via": []}
    failures: list[tuple[str, str]] = []  # (op, what happened)
    with (
        tempfile.TemporaryDirectory(prefix="hop-", dir=ctx.workdir) as tmp,
        _members(Path(tmp), storage) as (proxy, owner),
    ):
        for rep in range(ctx.sizes.reps):
            # A new repository each run: a full write every time. Alternate which path goes
            # first, as the other workloads alternate registries.
            direct_repo = repo_owned_by(1, count=2, prefix=f"bench/direct{rep}")
            hop_repo = repo_owned_by(1, count=2, prefix=f"bench/hop{rep}")
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
                        failures.append((op, f"{storage} rep {rep} {name}: {exc!r}"[:160]))
                        if said:
                            failures.append((op, f"member logs: {' / '.join(said)}"[:600]))
        peak = hop.peak_rss_mib(proxy)
    return runs, failures, peak
