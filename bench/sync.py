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

The same three pulls are then made with a real client, `skopeo copy docker://... dir:...`
(what the issue's user runs): it verifies every digest and writes the image to disk itself,
and fetches the config and the layer side by side, on connections of their own (so the
layer may reach the worker process that is not copying it). Each of its first pulls uses a
repository of its own too.

The CPU seconds the registries' processes used during each pull are reported too: on a
shared machine the wall times move with the other load, the work done much less.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.core import Context, MiB, Row, cpu_seconds, failed_note, median
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
MIN_REPS = 5  # repetitions of each pull in a full run, whatever the harness's default
KINDS = ("direct", "first", "later")
CLIENTS = ("raw", "skopeo")


def run(ctx: Context) -> list[Row]:
    from tests.support.server import running_registry  # tests.support: only when run
    from tests.sync.conftest import sync_config

    size = min(LAYER, ctx.sizes.blob) if ctx.quick else LAYER
    reps = ctx.sizes.reps if ctx.quick else max(ctx.sizes.reps, MIN_REPS)
    blob = BigBlob.make(size, min(ctx.sizes.chunk, size))
    skopeo = shutil.which("skopeo")
    clients = CLIENTS if skopeo else CLIENTS[:1]
    # (client, kind) -> seconds of each pull, and the registries' CPU seconds during it
    runs: dict[tuple[str, str], list[float]] = {(c, k): [] for c in CLIENTS for k in KINDS}
    cpu: dict[tuple[str, str], list[float]] = {(c, k): [] for c in CLIENTS for k in KINDS}
    failures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="sync-", dir=ctx.workdir) as tmp:
        workdir = Path(tmp)
        upstream = start_peer(workdir)
        try:
            repos = {c: [f"{REPO}-{c}-{rep}" for rep in range(reps)] for c in clients}
            with upstream.connect() as conn:
                push_image(conn, [r for c in clients for r in repos[c]], blob)
            registry = {"urls": [upstream.url], "onDemand": True, "tlsVerify": False}
            config = sync_config(workdir, [registry], WORKERS)
            config["log"]["level"] = "warn"  # as the harness's ocireg: no access log
            with running_registry(workdir, config, name="mirror") as mirror:
                mirror_pids = [mirror.proc.pid, *mirror.worker_pids()] if mirror.proc else []
                pullers = {
                    "raw": pull,
                    "skopeo": lambda host, port, repo: skopeo_pull(workdir, host, port, repo),
                }

                def timed(client: str, kind: str, port: int, pids: list[int], repo: str) -> None:
                    before = cpu_seconds(pids)
                    runs[client, kind].append(pullers[client]("127.0.0.1", port, repo))
                    cpu[client, kind].append(cpu_seconds(pids) - before)

                for client in clients:
                    for rep, repo in enumerate(repos[client]):
                        order = ("direct", "ocireg") if rep % 2 == 0 else ("ocireg", "direct")
                        for which in order:
                            try:
                                if which == "direct":
                                    timed(
                                        client, "direct", upstream.port, [upstream.proc.pid], repo
                                    )
                                else:
                                    timed(client, "first", mirror.port, mirror_pids, repo)
                                    timed(client, "later", mirror.port, mirror_pids, repo)
                            except (OSError, RuntimeError) as exc:
                                failures.append((f"{client} {which}", f"rep {rep}: {exc!r}"[:200]))
        finally:
            upstream.stop()
    return [r for c in clients for r in rows(size, c, runs, cpu, failures)]


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


def skopeo_pull(workdir: Path, host: str, port: int, repo: str) -> float:
    """Seconds for `skopeo copy` of `repo`:latest into a new `dir:` layout (then removed)."""
    policy = workdir / "skopeo-policy.json"
    if not policy.exists():
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (workdir / "skopeo-registries.conf").write_text("unqualified-search-registries = []\n")
    dest = Path(tempfile.mkdtemp(prefix="skopeo-", dir=workdir))
    cmd = [
        "skopeo",
        "--policy",
        str(policy),
        "--registries-conf",
        str(workdir / "skopeo-registries.conf"),
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        f"docker://{host}:{port}/{repo}:latest",
        f"dir:{dest}",
    ]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    try:
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"skopeo copy {repo}: {done.stderr.strip()[-300:]}")
    return elapsed


def rows(
    size: int,
    client: str,
    runs: dict[tuple[str, str], list[float]],
    cpu: dict[tuple[str, str], list[float]],
    failures: list[tuple[str, str]],
) -> list[Row]:
    direct = median(runs[client, "direct"])
    label = f"pull {size // MiB} MiB image, {CLIENT_LABELS[client]}"
    note = (
        f"docker-registry upstream on loopback; ocireg {WORKERS} workers, onDemand entry; "
        + CLIENT_NOTES[client]
        + f"; {len(runs[client, 'direct'])} alternated runs; comparison column: the direct pull"
    )
    return [
        Row(
            TITLE,
            f"{label}, first pull through ocireg",
            "s",
            ocireg=median(runs[client, "first"]),
            peer=direct,
            goal=1.3,
            lower_is_better=True,
            vs="upstream direct",
            runs={"first": runs[client, "first"], "direct": runs[client, "direct"]},
            note=note
            + failed_note(failures, f"{client} ocireg")
            + failed_note(failures, f"{client} direct"),
        ),
        Row(
            TITLE,
            f"{label}, later pull (local)",
            "s",
            ocireg=median(runs[client, "later"]),
            peer=direct,
            vs="upstream direct",
            runs={"later": runs[client, "later"], "direct": runs[client, "direct"]},
            note="right after the first pull; the tag is checked upstream (one HEAD)",
        ),
        *(
            Row(
                TITLE,
                f"{label}, {what}: registry CPU",
                "s",
                ocireg=median(cpu[client, kind]),
                peer=median(cpu[client, "direct"]),
                vs="upstream's, direct pull",
                runs={kind: cpu[client, kind], "direct": cpu[client, "direct"]},
                note="user+system seconds of the registry's processes during the pull",
            )
            for kind, what in (("first", "first pull"), ("later", "later pull"))
        ),
    ]


CLIENT_LABELS = {"raw": "raw-socket client", "skopeo": "skopeo copy"}
CLIENT_NOTES = {
    "raw": "manifest + config + layer, one connection, bytes read and dropped",
    "skopeo": "skopeo copy docker:// -> dir: (digests verified, written to disk)",
}
