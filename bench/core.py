"""What every workload shares: the run context, result rows, and the alternating comparison.

A workload is a function `run(ctx) -> list[Row]`, listed in `bench.workloads.WORKLOADS` or
provided by a plug-in module (see `PLUGINS` in `bench.__main__`) that defines `TITLE` and
`run(ctx)`. Workloads comparing the two registries call `compare(...)`, which alternates
the order of the targets between repetitions and keeps medians.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import Target

MiB = 1 << 20


@dataclass
class Sizes:
    blob: int  # the big blob (workloads 1, 2, reference)
    chunk: int  # PATCH chunk size
    duration: float  # seconds per manifest load run
    images: int  # small images pushed
    layer: int  # bytes per small layer
    clients: int  # concurrent small-image pushers
    connections: int  # manifest load connections
    reps: int  # medians of this many runs

    @classmethod
    def full(cls) -> Sizes:
        return cls(1 << 30, 16 * MiB, 10.0, 200, 64 << 10, 8, 64, 3)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(32 * MiB, 8 * MiB, 1.0, 16, 64 << 10, 8, 64, 1)


@dataclass
class Context:
    workdir: Path
    sizes: Sizes
    quick: bool
    ocireg: Target | None = None
    peer: Target | None = None
    zot: Target | None = None  # the third column, when ../shared/tools/zot exists
    # Physical limits measured by the reference workload, in MiB/s ("sha256", "loopback",
    # "hash+write"), for the "fraction of the limit" column.
    limits: dict[str, float] = field(default_factory=dict)

    @property
    def targets(self) -> list[Target]:
        return [t for t in (self.ocireg, self.peer, self.zot) if t is not None]


@dataclass
class Row:
    workload: str
    metric: str
    unit: str
    ocireg: float | None = None
    peer: float | None = None
    goal: float | None = None  # wanted ocireg/peer ratio (at least; at most if lower_is_better)
    limit: str | None = None  # key of ctx.limits this throughput is a fraction of
    limit_goal: float | None = None
    runs: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""
    vs: str = "docker-registry"  # what the comparison column holds for this row
    zot: float | None = None  # zot's figure for the same measurement (workloads run on it)
    lower_is_better: bool = False  # a time, not a rate: the goal is a ceiling on the ratio

    @property
    def ratio(self) -> float | None:
        if self.ocireg is None or not self.peer:
            return None
        return self.ocireg / self.peer

    @property
    def meets_goal(self) -> bool | None:
        if self.ratio is None or self.goal is None:
            return None
        return self.ratio <= self.goal if self.lower_is_better else self.ratio >= self.goal

    @property
    def ratio_zot(self) -> float | None:
        if self.ocireg is None or not self.zot:
            return None
        return self.ocireg / self.zot

    def as_dict(self, limits: dict[str, float]) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["ratio_zot"] = self.ratio_zot
        if self.limit and self.limit in limits and self.ocireg is not None:
            out["limit_mib_s"] = limits[self.limit]
            out["ocireg_fraction_of_limit"] = self.ocireg / limits[self.limit]
        return out


# One measurement of one target: {metric: value}, plus optional notes under "note:<metric>".
Measure = Callable[[Target, int], dict[str, float]]


def compare(ctx: Context, measure: Measure) -> dict[str, dict[str, list[float]]]:
    """Run `measure(target, rep)` ctx.sizes.reps times per target, alternating which target
    goes first; returns {metric: {target name: [values]}}."""
    results: dict[str, dict[str, list[float]]] = {}
    for rep in range(ctx.sizes.reps):
        order = ctx.targets if rep % 2 == 0 else list(reversed(ctx.targets))
        for target in order:
            for metric, value in measure(target, rep).items():
                results.setdefault(metric, {}).setdefault(target.name, []).append(value)
    return results


def median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def failed_note(failures: list[tuple[str, str]], kind: str) -> str:
    """What to add to a row's note for the failed runs of `kind` among (kind, text) pairs."""
    failed = [text for k, text in failures if k == kind]
    return f"; FAILED runs: {'; '.join(failed)}" if failed else ""


def row_from(
    results: dict[str, dict[str, list[float]]],
    workload: str,
    key: str,
    unit: str,
    label: str | None = None,
    **kw: Any,
) -> Row:
    """The row of metric `key` of `compare`'s results, shown as `label`."""
    per_target = results.get(key, {})
    return Row(
        workload,
        label or key,
        unit,
        ocireg=median(per_target.get("ocireg")),
        peer=median(per_target.get("peer")),
        zot=median(per_target.get("zot")),
        runs=per_target,
        **kw,
    )


class Stopwatch:
    """Wall time and this thread's CPU time, to show the client is not the bottleneck."""

    def __enter__(self) -> Stopwatch:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.thread_time() - self.cpu0

    @property
    def client_cpu(self) -> float:
        """Fraction of one core the client used."""
        return self.cpu / self.wall if self.wall else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
