"""Workload 9, cost that does not grow with content: tag writes into one repository as it
fills up, and catalog pages over many repositories.

- Tag writes: 8 clients put one manifest under tags t0..tN-1 of one repository (2 workers);
  the rate of the last 500 tags against the rate of the first 500 (goal >= 0.8).
- Catalog: R repositories written straight into a fresh root as OCI layouts (no HTTP, so
  the fill takes seconds), `ocireg rebuild-meta`, then the median time of one page (n=100,
  at random places) and of a walk of the whole catalog in pages of 1,000.
- Maintenance over the same R repositories: the time and peak RSS of `ocireg rebuild-meta`
  and of `ocireg gc` (goal for gc at 100,000: under 256 MiB).
- The same on S3 + Redis (a SeaweedFS and a Redis started here), with fewer tags and
  repositories.

Runs against ocireg alone (the peers keep one file per tag and walk the catalog; their
figures for the same shape are in docs/performance.md).

`python -m bench.content --tags 10000 --reps 3` runs only the tag writes on the filesystem
(medians of the runs), for measuring a change to the write path without the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core import Context, Row, Sizes, cpu_seconds

if TYPE_CHECKING:
    from tests.support.backends import SeaweedFS

TITLE = "9 content"
WRITERS = 8
EMPTY_INDEX = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
)
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def run(ctx: Context) -> list[Row]:
    tags = 2_000 if ctx.quick else 10_000
    rows = [_tag_writes(ctx, tags, Storage())]
    for repos in (1_000,) if ctx.quick else (10_000, 100_000):
        rows += _catalog(ctx, repos, Storage())
    # On S3 each tag write and each filled repository is a request to SeaweedFS on the same
    # two cores: smaller counts keep the workload to minutes.
    with tempfile.TemporaryDirectory(prefix="s3-", dir=ctx.workdir) as tmp, _on_s3(Path(tmp)) as s3:
        rows.append(_tag_writes(ctx, 1_000 if ctx.quick else 2_000, s3))
        rows += _catalog(ctx, 1_000 if ctx.quick else 5_000, s3)
    return rows


@dataclass
class Storage:
    """Where the workload's ocireg keeps its data: a local root (the default), or a bucket
    of a SeaweedFS and a Redis started by `_on_s3`."""

    weed: SeaweedFS | None = None
    redis_url: str = ""
    label: str = ""
    workers: int = 2

    def config(self, root: Path) -> dict[str, Any]:
        from tests.support.server import base_config

        config = base_config(root, workers=self.workers)
        if self.weed is not None:
            prefix = uuid.uuid4().hex[:8]
            config["storage"]["storageDriver"] = self.weed.storage_driver(f"/{prefix}")
            config["storage"]["remoteCache"] = True
            config["storage"]["cacheDriver"] = {
                "name": "redis",
                "url": self.redis_url,
                "keyprefix": prefix,
            }
        return config

    def fill(
        self,
        config: dict[str, Any],
        count: int,
        files_of: Callable[[int], dict[str, bytes]] | None = None,
    ) -> list[str]:
        """`count` repositories written straight into the storage (no HTTP): empty, or
        holding `files_of(i)` (path in the repository -> content) for the i-th."""
        names = [f"team{i % 100:02d}/app{i:06d}" for i in range(count)]
        empty = {"oci-layout": LAYOUT, "index.json": EMPTY_INDEX}
        repos = [(n, files_of(i) if files_of else empty) for i, n in enumerate(names)]
        if self.weed is None:
            root = Path(config["storage"]["rootDirectory"])
            for name, files in repos:
                for file, body in files.items():
                    (root / name / file).parent.mkdir(parents=True, exist_ok=True)
                    (root / name / file).write_bytes(body)
            return sorted(names)
        from tests.support.backends import s3_request

        top = config["storage"]["storageDriver"]["rootdirectory"].strip("/")
        keys = [(f"{top}/{top}/{n}/{f}", b) for n, files in repos for f, b in files.items()]

        def put(key: str, body: bytes) -> None:
            assert s3_request(self.weed.endpoint, "PUT", key, body) == 200  # type: ignore[union-attr]

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kb: put(*kb), keys))
        return sorted(names)


@contextlib.contextmanager
def _on_s3(workdir: Path) -> Iterator[Storage]:
    from tests.support.backends import running_redis, running_seaweedfs

    for sub in ("weed", "redis"):
        (workdir / sub).mkdir()
    with (
        running_seaweedfs(workdir / "weed") as weed,
        running_redis(workdir / "redis") as redis,
    ):
        yield Storage(weed, redis.url, " on S3 + Redis")


def _tag_writes(ctx: Context, count: int, storage: Storage) -> Row:
    import httpx

    from tests.support.oci import push_image
    from tests.support.server import running_registry

    with (
        tempfile.TemporaryDirectory(prefix="tags-", dir=ctx.workdir) as tmp,
        running_registry(Path(tmp), storage.config(Path(tmp) / "root")) as registry,
    ):
        repo = "bench/tags"
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            body = push_image(client, repo, "base").manifest
        assert registry.proc is not None
        with _cpu_sampled(registry.proc.pid) as cpu:
            started = time.perf_counter()
            done = write_tags(registry.port, repo, body, count)
    times = sorted(done)
    first = 500 / (times[499] - started)
    last = 500 / (times[-1] - times[-501])
    # Server CPU per tag: the rates above follow the other load on the machine; this less.
    cpu_first = (cpu.at(times[499]) - cpu.at(started)) / 500 * 1000
    cpu_last = (cpu.at(times[-1]) - cpu.at(times[-501])) / 500 * 1000
    return Row(
        TITLE,
        f"tag writes, tags {count - 500:,}-{count:,}{storage.label}",
        "tags/s",
        ocireg=last,
        peer=first,
        goal=0.8,
        vs="first 500 tags",
        note=f"{WRITERS} clients, one repository, {storage.workers} workers; "
        f"whole run {count / (times[-1] - started):.0f} tags/s; "
        f"server CPU per tag {cpu_first:.2f} ms (first 500), {cpu_last:.2f} ms (last 500)",
    )


class _CpuSamples:
    """CPU seconds used by a process and its descendants, sampled in a thread; `at(t)` is
    the sample nearest to perf_counter time `t`."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    def at(self, when: float) -> float:
        return min(self.samples, key=lambda s: abs(s[0] - when))[1]


@contextlib.contextmanager
def _cpu_sampled(pid: int, interval: float = 0.02) -> Iterator[_CpuSamples]:
    from tests.process.helpers import descendants

    pids = [pid, *descendants(pid)]
    cpu = _CpuSamples()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            cpu.samples.append((time.perf_counter(), cpu_seconds(pids)))
            stop.wait(interval)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        yield cpu
    finally:
        stop.set()
        thread.join()
        cpu.samples.append((time.perf_counter(), cpu_seconds(pids)))


def write_tags(port: int, repo: str, body: bytes, count: int) -> list[float]:
    """PUT `body` under tags t0..t<count-1> of `repo` from WRITERS clients; the time each
    write was answered (time.perf_counter), by tag."""
    done = [0.0] * count
    next_tag = iter(range(count))
    lock = threading.Lock()

    def write() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        while True:
            with lock:
                n = next(next_tag, None)
            if n is None:
                return
            conn.request("PUT", f"/v2/{repo}/manifests/t{n}", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 201, response.status
            done[n] = time.perf_counter()

    threads = [threading.Thread(target=write) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


def _catalog(ctx: Context, count: int, storage: Storage) -> list[Row]:
    from tests.support.server import running_registry

    with tempfile.TemporaryDirectory(prefix="catalog-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        config = storage.config(work / "root")
        names = storage.fill(config, count)
        (work / "config.json").write_text(json.dumps(config))
        rebuilt, rebuild_rss = _measured_cli("rebuild-meta", str(work / "config.json"))
        with running_registry(work, config, name="catalog") as registry:
            conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=600)

            def get(path: str) -> dict[str, object]:
                conn.request("GET", path)
                response = conn.getresponse()
                data = response.read()
                assert response.status == 200, (response.status, data[:200])
                link = response.getheader("link") or ""
                return {"body": json.loads(data), "link": link}

            get("/v2/_catalog?n=1")  # the first page of a process walks once (see store.py)
            rng = random.Random(9)
            pages = []
            for _ in range(50):
                last = rng.choice(names)
                started = time.perf_counter()
                page = get(f"/v2/_catalog?n=100&last={last}")
                pages.append((time.perf_counter() - started) * 1000)
                assert len(page["body"]["repositories"]) <= 100  # type: ignore[index]
            started = time.perf_counter()
            seen, path = 0, "/v2/_catalog?n=1000"
            while path:
                page = get(path)
                seen += len(page["body"]["repositories"])  # type: ignore[index]
                link = str(page["link"])
                path = link[1 : link.index(">")] if link else ""
            walk = time.perf_counter() - started
            assert seen == count, (seen, count)
        collected, gc_rss = _measured_cli("gc", str(work / "config.json"))
    label = f"{count:,} repositories{storage.label}"
    return [
        Row(
            TITLE,
            f"catalog page n=100, {label}",
            "ms",
            ocireg=statistics.median(pages),
            note="median of 50 pages at random places; goal < 10 ms at 100,000",
        ),
        Row(
            TITLE,
            f"whole catalog in pages of 1,000, {label}",
            "s",
            ocireg=walk,
        ),
        Row(
            TITLE,
            f"ocireg rebuild-meta, {label}",
            "MiB",
            ocireg=rebuild_rss,
            note=f"peak RSS; it took {rebuilt:.1f} s",
        ),
        Row(
            TITLE,
            f"ocireg gc, {label}",
            "MiB",
            ocireg=gc_rss,
            note=f"peak RSS; it took {collected:.1f} s; goal < 256 MiB at 100,000",
        ),
    ]


def _measured_cli(*args: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `ocireg ARGS`, run under a parent of its own so that
    the peak is this command's alone (RUSAGE_CHILDREN keeps the largest child's)."""
    from tests.support.server import ocireg_env

    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(r.returncode, time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "ocireg", *args],
        env=ocireg_env(),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    code, seconds, kib = result.stdout.split()
    assert code == "0", result.stderr[-2000:]
    return float(seconds), int(kib) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.content", description=__doc__)
    parser.add_argument("--tags", type=int, default=10_000, help="tags written per run")
    parser.add_argument("--reps", type=int, default=1, help="runs (medians are printed)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ocireg-bench-") as tmp:
        ctx = Context(Path(tmp), Sizes.full(), quick=False)
        for _ in range(args.reps):
            rows.append(_tag_writes(ctx, args.tags, Storage(workers=args.workers)))
            row = rows[-1]
            print(f"first 500 {row.peer:.0f}/s, last 500 {row.ocireg:.0f}/s, {row.note}")
    first = statistics.median(r.peer or 0.0 for r in rows)
    last = statistics.median(r.ocireg or 0.0 for r in rows)
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(
        f"medians of {len(rows)}: first 500 {first:.0f}/s, last 500 {last:.0f}/s, "
        f"ratio {last / first:.2f} ({load})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
