"""Workload 10, the first pull through the cache (issue 15): one image with a 256 MiB layer
(the quick run: the harness's small blob) in Debian's docker-registry on loopback, and an
ocireg (2 workers) whose `extensions.sync` has an `onDemand` entry for it.

Each repetition pulls, like a client (the manifest by tag, then the config and the layer,
every byte read):
- straight from the upstream (the comparison column);
- through ocireg, the first time: a repository of its own per repetition (the upstream has
  the image under one name per repetition, mounted, not pushed again), so ocireg fetches,
  stores and streams it (goal: at most 1.3x the direct pull);
- through ocireg again, once the first pull has ended (local: the blob is stored; the tag is
  still checked upstream with one HEAD, `manifestCheckInterval` being 0 as in zot).
Which of the direct and the ocireg pulls goes first alternates between repetitions.

The CPU seconds the registries' processes used during each pull are reported too: on a
shared machine the wall times move with the other load, the work done much less.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from bench.core import Context, MiB, Row, failed_note, median
from bench.rawhttp import Connection
from bench.servers import start_peer
from bench.workloads import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    BigBlob,
    _expect,
    image_manifest,
    push_single,
)

TITLE = "10 sync"
LAYER = 256 * MiB
WORKERS = 2
REPO = "bench/sync"


def run(ctx: Context) -> list[Row]:
    from tests.support.server import running_registry  # tests.support: only when run
    from tests.sync.conftest import sync_config

    size = min(LAYER, ctx.sizes.blob) if ctx.quick else LAYER
    blob = BigBlob.make(size, min(ctx.sizes.chunk, size))
    runs: dict[str, list[float]] = {k: [] for k in ("direct", "first", "later")}
    cpu: dict[str, list[float]] = {k: [] for k in ("direct", "first", "later")}
    failures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="sync-", dir=ctx.workdir) as tmp:
        workdir = Path(tmp)
        upstream = start_peer(workdir)
        try:
            repos = [f"{REPO}-{rep}" for rep in range(ctx.sizes.reps)]
            with upstream.connect() as conn:
                push_image(conn, repos, blob)
            registry = {"urls": [upstream.url], "onDemand": True, "tlsVerify": False}
            config = sync_config(workdir, [registry], WORKERS)
            config["log"]["level"] = "warn"  # as the harness's ocireg: no access log
            with running_registry(workdir, config, name="mirror") as mirror:
                mirror_pids = [mirror.proc.pid, *mirror.worker_pids()] if mirror.proc else []

                def timed(kind: str, port: int, pids: list[int], repo: str) -> None:
                    before = cpu_seconds(pids)
                    runs[kind].append(pull("127.0.0.1", port, repo))
                    cpu[kind].append(cpu_seconds(pids) - before)

                for rep, repo in enumerate(repos):
                    order = ("direct", "ocireg") if rep % 2 == 0 else ("ocireg", "direct")
                    for which in order:
                        try:
                            if which == "direct":
                                timed("direct", upstream.port, [upstream.proc.pid], repo)
                            else:
                                timed("first", mirror.port, mirror_pids, repo)
                                timed("later", mirror.port, mirror_pids, repo)
                        except (OSError, RuntimeError) as exc:
                            failures.append((which, f"rep {rep}: {exc!r}"[:200]))
        finally:
            upstream.stop()
    return rows(size, runs, cpu, failures)


def push_image(conn: Connection, repos: list[str], blob: BigBlob) -> None:
    """The image under `repos[0]`:latest, and under the other names by mounting its blobs
    (docker-registry keeps one copy)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    config_digest = f"sha256:{hashlib.sha256(config.encode()).hexdigest()}"
    first = repos[0]
    push_single(conn, first, blob)
    r = conn.request("POST", f"/v2/{first}/blobs/uploads/?digest={config_digest}", body=b"")
    if r.status != 201:  # no monolithic POST: POST then PUT
        _expect(r.status, 202, "POST upload")
        location = r.headers["location"]
        sep = "&" if "?" in location else "?"
        r = conn.request("PUT", f"{location}{sep}digest={config_digest}", body=config.encode())
        _expect(r.status, 201, "PUT config")
    manifest = image_manifest(
        [
            {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            {"mediaType": OCI_LAYER, "digest": blob.digest, "size": blob.size},
        ]
    )
    for repo in repos:
        if repo != first:
            for digest in (config_digest, blob.digest):
                r = conn.request(
                    "POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={first}", body=b""
                )
                _expect(r.status, 201, "mount blob")
        r = conn.request(
            "PUT", f"/v2/{repo}/manifests/latest", {"Content-Type": OCI_MANIFEST}, manifest
        )
        _expect(r.status, 201, "PUT manifest")


def pull(host: str, port: int, repo: str) -> float:
    """Seconds to pull `repo`:latest as a client does: the manifest by tag, then each blob it
    lists, every byte read (one connection)."""
    started = time.perf_counter()
    with Connection(host, port) as conn:
        r = conn.request("GET", f"/v2/{repo}/manifests/latest", {"Accept": OCI_MANIFEST})
        _expect(r.status, 200, f"GET manifest {repo}")
        doc = json.loads(r.body)
        for desc in [doc["config"], *doc["layers"]]:
            r = conn.request("GET", f"/v2/{repo}/blobs/{desc['digest']}", keep_body=False)
            _expect(r.status, 200, f"GET blob {desc['digest']}")
            if r.length != desc["size"]:
                raise RuntimeError(f"blob {desc['digest']}: {r.length} of {desc['size']} bytes")
    return time.perf_counter() - started


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


def rows(
    size: int,
    runs: dict[str, list[float]],
    cpu: dict[str, list[float]],
    failures: list[tuple[str, str]],
) -> list[Row]:
    direct = median(runs["direct"])
    label = f"pull {size // MiB} MiB image"
    note = (
        f"docker-registry upstream on loopback; ocireg {WORKERS} workers, onDemand entry;"
        " manifest + config + layer, one connection; comparison column: the direct pull"
    )
    return [
        Row(
            TITLE,
            f"{label}, first pull through ocireg",
            "s",
            ocireg=median(runs["first"]),
            peer=direct,
            goal=1.3,
            lower_is_better=True,
            vs="upstream direct",
            runs={"first": runs["first"], "direct": runs["direct"]},
            note=note + failed_note(failures, "ocireg") + failed_note(failures, "direct"),
        ),
        Row(
            TITLE,
            f"{label}, later pull (local)",
            "s",
            ocireg=median(runs["later"]),
            peer=direct,
            vs="upstream direct",
            runs={"later": runs["later"], "direct": runs["direct"]},
            note="right after the first pull; the tag is checked upstream (one HEAD)",
        ),
        *(
            Row(
                TITLE,
                f"{label}, {what}: registry CPU",
                "s",
                ocireg=median(cpu[kind]),
                peer=median(cpu["direct"]),
                vs="upstream's, direct pull",
                runs={kind: cpu[kind], "direct": cpu["direct"]},
                note="user+system seconds of the registry's processes during the pull",
            )
            for kind, what in (("first", "first pull"), ("later", "later pull"))
        ),
    ]
