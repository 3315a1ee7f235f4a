"""`python -m bench [--quick]`: start ocireg, docker-registry and (when ../shared/tools/zot
exists) zot on loopback, run the workloads against each (alternating, medians), print a
table, write JSON under bench/results/.

Extra workloads plug in as modules defining `TITLE` and `run(ctx) -> list[Row]` (see
`bench.core`); the ones listed in PLUGINS are picked up as soon as they exist.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.core import Context, Row, Sizes
from bench.report import document, table
from bench.servers import peer_version, start_ocireg, start_peer, start_zot, zot_binary, zot_version
from bench.workloads import WORKLOADS, cluster_stub

RESULTS = Path(__file__).resolve().parent / "results"
# Workload key -> module defining TITLE and run(ctx); "5" shows a stub until it exists.
# bench/cluster_hop.py and bench/s3_vs_fs.py are standalone scripts: the adapters
# bench/cluster.py and bench/s3.py run them inside the table.
PLUGINS = {
    "5": "bench.cluster",
    "7": "bench.s3",
    "9": "bench.content",
    "10": "bench.sync",
    "11": "bench.ui",
    "12": "bench.search",
}
# A plug-in runs only when the modules it needs exist.
NEEDS = {"5": "bench.cluster_hop", "7": "bench.s3_vs_fs"}
STUBS: dict[str, Callable[[Context], list[Row]]] = {"5": cluster_stub}


def _plugins() -> dict[str, Callable[[Context], list[Row]]]:
    found: dict[str, Callable[[Context], list[Row]]] = {}
    for key, module_name in PLUGINS.items():
        needed = (module_name, NEEDS.get(key, module_name))
        if all(importlib.util.find_spec(name) is not None for name in needed):
            found[key] = importlib.import_module(module_name).run
        elif key in STUBS:
            found[key] = STUBS[key]
    return found


def machine() -> dict[str, object]:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ocireg http.workers (default: ocireg's default, the CPU count)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workload keys: 1 (push, and the pull of workload 2), 3, 4, 5,"
        " 7, 8, 9, 10, 11, 12; 6 (the reference limits) always runs",
    )
    parser.add_argument("--reps", type=int, default=None, help="runs per figure (median)")
    parser.add_argument(
        "--log-level",
        default="warn",
        help="ocireg log.level (warn, like the peer; info adds the access log)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    parser.add_argument("--no-zot", action="store_true", help="leave zot out even if present")
    args = parser.parse_args(argv)
    zot = None if args.no_zot else zot_binary()

    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.reps:
        sizes.reps = args.reps
    workloads = {**WORKLOADS, **_plugins()}
    keys = [k for k in ("6", "1", "3", "8", "4", "5", "7", "9", "10", "11", "12") if k in workloads]
    if args.only:
        wanted = set(args.only.split(","))
        keys = [k for k in keys if k in wanted or k == "6"]  # 6: the limits others need

    started = time.time()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ocireg-bench-") as tmp:
        ctx = Context(Path(tmp), sizes, args.quick)
        ctx.ocireg = start_ocireg(ctx.workdir, args.workers, args.log_level)
        try:
            ctx.peer = start_peer(ctx.workdir)
            if zot is not None:
                ctx.zot = start_zot(ctx.workdir, zot)
            rows: list[Row] = []
            for key in keys:
                print(f"[bench] workload {key} ...", file=sys.stderr, flush=True)
                try:
                    rows += workloads[key](ctx)
                except Exception as exc:  # one broken workload must not lose the others
                    traceback.print_exc()
                    rows.append(Row(f"{key} (failed)", "error", "", note=f"{exc!r}"[:300]))
        finally:
            for target in ctx.targets:
                target.stop()
        label = ctx.ocireg.label

    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "machine": machine(),
        "ocireg": {"workers": args.workers or os.cpu_count(), "log_level": args.log_level},
        "peer": {"name": "docker-registry", "version": peer_version()},
        "zot": {"binary": str(zot), "version": zot_version(zot)} if zot is not None else None,
        "sizes": vars(sizes),
        "seconds": round(time.time() - started, 1),
        # Other work on the machine moves every figure: the 1-minute load before and after.
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    text = table(rows, ctx.limits, label)
    m = meta["machine"]
    assert isinstance(m, dict)
    load = meta["loadavg_1min"]
    print(
        f"\n{meta['date']} · {m['cores']} cores, {m['cpu']} · medians of {sizes.reps}"
        f" · load average {load[0]} before, {load[1]} after\n"
    )
    print(text)
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document(rows, ctx.limits, meta), indent=2) + "\n")
    if not args.quick and args.out is None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
        (RESULTS / f"run-{stamp}.json").write_text(out.read_text())
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
