"""The workloads of issue 6, each `run(ctx) -> list[Row]`; `WORKLOADS` lists them in order."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.core import Context, MiB, Row, Stopwatch, compare, cpu_seconds, median, row_from
from bench.rawhttp import Connection, location_target, with_query
from bench.servers import Target

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCTETS = {"Content-Type": "application/octet-stream"}
BIG_REPO = "bench/big"
MANIFEST_REPO = "bench/manifest"


# --- 6: the physical reference ------------------------------------------------------------


def reference(ctx: Context) -> list[Row]:
    """sha256 and a raw loopback socket copy, in MiB/s: ceilings the other throughputs are
    compared with (the best of the runs). hash+write is measured next to each push."""
    size = ctx.sizes.blob
    piece = os.urandom(MiB)
    count = size // MiB

    def sha256() -> float:
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for _ in range(count):
            h.update(piece)
        return size / MiB / (time.perf_counter() - t0)

    def loopback() -> float:
        return _loopback_copy(size, 16 * MiB)

    measures: dict[str, Callable[[], float]] = {
        "sha256": sha256,
        "loopback": loopback,
    }
    rows = []
    for key, fn in measures.items():
        values = [fn() for _ in range(ctx.sizes.reps)]
        # A ceiling is the best the machine did: on a shared box the noise only lowers it.
        ctx.limits[key] = max(values)
        rows.append(
            Row("6 reference", key, "MiB/s", ocireg=ctx.limits[key], runs={"machine": values})
        )
    rows[0].note = "hashlib.sha256, 1 MiB updates, one core"
    rows[1].note = "sendall 16 MiB / recv_into 1 MiB over 127.0.0.1"
    return rows


def hash_write(ctx: Context, size: int) -> float:
    """What a registry must do with one upload, in MiB/s: hash every byte and write it to
    the filesystem of its storage, 1 MiB at a time on one thread (no fsync: neither registry
    fsyncs by default)."""
    piece = os.urandom(MiB)
    path = ctx.workdir / "reference.tmp"
    h = hashlib.sha256()
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(size // MiB):
            h.update(piece)
            os.write(fd, piece)
    finally:
        os.close(fd)
    rate = size / MiB / (time.perf_counter() - t0)
    path.unlink()
    return rate


def _loopback_copy(size: int, piece_size: int) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = [0]

    def sink() -> None:
        conn, _ = server.accept()
        buf = bytearray(MiB)
        with conn:
            while n := conn.recv_into(buf):
                received[0] += n

    thread = threading.Thread(target=sink)
    thread.start()
    piece = memoryview(os.urandom(piece_size))
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as client:
        for _ in range(size // piece_size):
            client.sendall(piece)
    thread.join()
    elapsed = time.perf_counter() - t0
    server.close()
    return received[0] / MiB / elapsed


# --- 1, 2: one big blob up and down ---------------------------------------------------------


@dataclass
class BigBlob:
    """`count` repetitions of one random piece: any size without holding it in memory."""

    piece: bytes
    count: int
    digest: str

    @classmethod
    def make(cls, size: int, piece_size: int) -> BigBlob:
        piece = os.urandom(piece_size)
        h = hashlib.sha256()
        for _ in range(size // piece_size):
            h.update(piece)
        return cls(piece, size // piece_size, f"sha256:{h.hexdigest()}")

    @property
    def size(self) -> int:
        return len(self.piece) * self.count

    def pieces(self) -> Iterator[memoryview]:
        view = memoryview(self.piece)
        for _ in range(self.count):
            yield view


def _expect(reply_status: int, want: int, what: str) -> None:
    if reply_status != want:
        raise RuntimeError(f"{what}: HTTP {reply_status}, expected {want}")


def push_single(conn: Connection, repo: str, blob: BigBlob) -> None:
    """POST then one PUT with the whole body (what `docker push` does for a layer)."""
    r = conn.request("POST", f"/v2/{repo}/blobs/uploads/")
    _expect(r.status, 202, "POST upload")
    target = with_query(location_target(r.headers["location"]), "digest", blob.digest)
    r = conn.request(
        "PUT",
        target,
        {"Content-Type": "application/octet-stream"},
        blob.pieces(),
        length=blob.size,
    )
    _expect(r.status, 201, "PUT blob")


def push_chunked(conn: Connection, repo: str, blob: BigBlob) -> None:
    """POST, one PATCH per piece with Content-Range, then PUT ?digest= without a body."""
    r = conn.request("POST", f"/v2/{repo}/blobs/uploads/")
    _expect(r.status, 202, "POST upload")
    target = location_target(r.headers["location"])
    offset = 0
    for piece in blob.pieces():
        end = offset + len(piece) - 1
        r = conn.request(
            "PATCH",
            target,
            {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}"},
            (piece,),
            length=len(piece),
        )
        _expect(r.status, 202, "PATCH chunk")
        target = location_target(r.headers["location"])
        offset = end + 1
    r = conn.request("PUT", with_query(target, "digest", blob.digest))
    _expect(r.status, 201, "PUT final")


def blobs(ctx: Context) -> list[Row]:
    blob = BigBlob.make(ctx.sizes.blob, ctx.sizes.chunk)
    mib = blob.size / MiB

    def measure(target: Target, rep: int) -> dict[str, float]:
        # The ceiling is measured right before each target's pushes, under the same load.
        out: dict[str, float] = {"hash+write": hash_write(ctx, blob.size)}
        with target.connect() as conn:
            for name, push in (
                ("push, single PUT", push_single),
                ("push, PATCH chunks", push_chunked),
            ):
                conn.request("DELETE", f"/v2/{BIG_REPO}/blobs/{blob.digest}")
                with Stopwatch() as sw:
                    push(conn, BIG_REPO, blob)
                out[name] = mib / sw.wall
                out[f"cpu:{name}"] = sw.client_cpu
            with Stopwatch() as sw:
                r = conn.request("GET", f"/v2/{BIG_REPO}/blobs/{blob.digest}", keep_body=False)
            _expect(r.status, 200, "GET blob")
            if r.length != blob.size:
                raise RuntimeError(f"GET blob: {r.length} bytes, expected {blob.size}")
            out["pull"] = mib / sw.wall
            out["cpu:pull"] = sw.client_cpu
        return out

    results = compare(ctx, measure)
    limit_runs = [v for values in results.pop("hash+write").values() for v in values]
    ctx.limits["hash+write"] = median(limit_runs) or 0.0
    size = f"{blob.size // MiB} MiB"
    chunk = f"{ctx.sizes.chunk // MiB} MiB"
    rows = [
        row_from(
            results,
            f"1 push {size}",
            "push, single PUT",
            "MiB/s",
            goal=2.5,
            limit="hash+write",
            limit_goal=0.8,
        ),
        row_from(
            results,
            f"1 push {size}",
            "push, PATCH chunks",
            "MiB/s",
            f"push, {chunk} PATCH chunks",
            goal=2.5,
            limit="hash+write",
            limit_goal=0.8,
        ),
        row_from(results, f"2 pull {size}", "pull", "MiB/s", goal=1.2, limit="loopback"),
    ]
    for row, key in zip(rows, ("push, single PUT", "push, PATCH chunks", "pull"), strict=True):
        cpu = results.get(f"cpu:{key}", {})
        row.note = (
            "client CPU "
            + ", ".join(f"{name} {100 * max(v):.0f}%" for name, v in cpu.items())
            + " of a core"
        )
    limit_row = Row(
        "6 reference",
        "hash+write",
        "MiB/s",
        ocireg=ctx.limits["hash+write"],
        runs={"machine": limit_runs},
        note="sha256 + os.write 1 MiB pieces, one thread; median of runs next to each push",
    )
    return [limit_row, *rows]


# --- 3: manifest GET and HEAD under load --------------------------------------------------------


def image_manifest(descriptors: list[dict[str, object]]) -> bytes:
    """An OCI image manifest: the first descriptor is the config, the others the layers."""
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0]}
    return json.dumps({**doc, "layers": descriptors[1:]}).encode()


def push_image(conn: Connection, repo: str, tag: str, layers: list[bytes]) -> str:
    """Push config + layers (monolithic POST ?digest=... is not used: POST then PUT, as
    clients do) and an OCI manifest under `tag`; returns the manifest body's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    descriptors: list[dict[str, object]] = []
    for media_type, data in [(OCI_CONFIG, config.encode()), *((OCI_LAYER, x) for x in layers)]:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        r = conn.request("POST", f"/v2/{repo}/blobs/uploads/")
        _expect(r.status, 202, "POST upload")
        target = with_query(location_target(r.headers["location"]), "digest", digest)
        r = conn.request("PUT", target, {"Content-Type": "application/octet-stream"}, data)
        _expect(r.status, 201, "PUT blob")
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = image_manifest(descriptors)
    r = conn.request("PUT", f"/v2/{repo}/manifests/{tag}", {"Content-Type": OCI_MANIFEST}, manifest)
    _expect(r.status, 201, "PUT manifest")
    return f"sha256:{hashlib.sha256(manifest).hexdigest()}"


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_AB_RPS = re.compile(r"Requests per second:\s+([\d.]+)")
_AB_FAILED = re.compile(r"(?:Failed requests|Non-2xx responses):\s+(\d+)")
_AB_KEEPALIVE = re.compile(r"Keep-Alive requests:\s+(\d+)")
_AB_COMPLETE = re.compile(r"Complete requests:\s+(\d+)")


def _pinned(cmd: list[str]) -> list[str]:
    # The load generator gets the last core to itself as far as the scheduler allows; the
    # registries' processes may still run there (2 cores: nothing else is possible).
    cores = os.cpu_count() or 1
    return ["taskset", "-c", str(cores - 1), *cmd] if cores > 1 and shutil.which("taskset") else cmd


def wrk_get(
    url: str, connections: int, duration: float, accept: str = OCI_MANIFEST, timeout: int = 2
) -> float:
    """Requests/s; any non-2xx answer or socket error (a request slower than `timeout`
    seconds counts as one) fails the run."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout}s",
        "-H",
        f"Accept: {accept}",
        url,
    ]
    out = subprocess.run(_pinned(cmd), capture_output=True, text=True, check=True).stdout
    bad = _WRK_NON2XX.search(out)
    if bad or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    m = _WRK_RPS.search(out)
    if m is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return float(m.group(1))


def ab_head(url: str, connections: int, duration: float) -> float:
    # -t before -n: -t alone implies -n 50000, which a fast server finishes early.
    cmd = [
        "ab",
        "-k",
        "-i",
        "-q",
        "-c",
        str(connections),
        "-t",
        str(max(1, round(duration))),
        "-n",
        "100000000",
        "-H",
        f"Accept: {OCI_MANIFEST}",
        url,
    ]
    out = subprocess.run(_pinned(cmd), capture_output=True, text=True, check=True).stdout
    failed = sum(int(n) for n in _AB_FAILED.findall(out))
    complete = _AB_COMPLETE.search(out)
    keepalive = _AB_KEEPALIVE.search(out)
    if failed or complete is None or keepalive is None:
        raise RuntimeError(f"ab saw errors against {url}:\n{out}")
    if int(keepalive.group(1)) < int(complete.group(1)) * 0.9:
        raise RuntimeError(f"ab: keep-alive not honoured by {url}:\n{out}")
    m = _AB_RPS.search(out)
    if m is None:
        raise RuntimeError(f"ab output not understood:\n{out}")
    return float(m.group(1))


def manifests(ctx: Context) -> list[Row]:
    for target in ctx.targets:
        with target.connect() as conn:
            push_image(conn, MANIFEST_REPO, "latest", [os.urandom(4096)])
            r = conn.request(
                "GET", f"/v2/{MANIFEST_REPO}/manifests/latest", {"Accept": OCI_MANIFEST}
            )
            _expect(r.status, 200, f"{target.name}: GET manifest")

    def measure(target: Target, rep: int) -> dict[str, float]:
        url = f"{target.url}/v2/{MANIFEST_REPO}/manifests/latest"
        n, d = ctx.sizes.connections, ctx.sizes.duration
        pids = target.pids()
        before = cpu_seconds(pids)
        get = wrk_get(url, n, d)
        # The server's CPU per request: what the code costs, less swayed than the rate by
        # what else the machine runs (a regression of the code shows here first).
        cpu_us = (cpu_seconds(pids) - before) / (get * max(1, round(d))) * 1e6
        return {"GET": get, "GET cpu": cpu_us, "HEAD": ab_head(url, n, d)}

    results = compare(ctx, measure)
    where = f"{ctx.sizes.connections} connections, {ctx.sizes.duration:g} s, by tag"
    cpu = {name: median(values) for name, values in results.get("GET cpu", {}).items()}
    names = {"peer": "docker-registry"}
    spent = ", ".join(f"{names.get(n, n)} {us:.0f}" for n, us in cpu.items() if us is not None)
    return [
        row_from(
            results,
            "3 manifest",
            "GET",
            "req/s",
            "GET (wrk)",
            goal=10.0,
            note=f"{where}; server CPU per GET, us: {spent}",
        ),
        row_from(results, "3 manifest", "HEAD", "req/s", "HEAD (ab -k)", goal=10.0, note=where),
    ]


# --- 8: blob downloads, many at once --------------------------------------------------------

DOWNLOADS_REPO = "bench/downloads"
DOWNLOADS_LARGE = 64 * MiB
DOWNLOADS_SMALL = 4096
DOWNLOADERS = 8


def downloads(ctx: Context) -> list[Row]:
    """What workload 2 (one client) does not show: blobs fetched by many clients at once,
    as a fleet pulling an image does. A large blob by 8 connections (MiB/s), a 4 KiB blob
    (a config) by the manifest workload's connections (req/s)."""
    large = BigBlob.make(min(DOWNLOADS_LARGE, ctx.sizes.blob), MiB)
    small = BigBlob.make(DOWNLOADS_SMALL, DOWNLOADS_SMALL)
    for target in ctx.targets:
        with target.connect() as conn:
            push_single(conn, DOWNLOADS_REPO, large)
            push_single(conn, DOWNLOADS_REPO, small)

    def measure(target: Target, rep: int) -> dict[str, float]:
        base = f"{target.url}/v2/{DOWNLOADS_REPO}/blobs/"
        d = ctx.sizes.duration
        # On a loaded machine one answer can take over wrk's default 2 s (a 64 MiB one among
        # 8; a 4 KiB one among 64 from docker-registry at ~200 req/s): slow, not failed.
        large_rps = wrk_get(base + large.digest, DOWNLOADERS, d, accept="*/*", timeout=30)
        small_rps = wrk_get(base + small.digest, ctx.sizes.connections, d, "*/*", timeout=30)
        return {"large": large_rps * large.size / MiB, "small": small_rps}

    results = compare(ctx, measure)
    big = f"{large.size // MiB} MiB"
    return [
        row_from(
            results,
            "8 downloads",
            "large",
            "MiB/s",
            f"{big} blob, {DOWNLOADERS} at once",
            note=f"wrk -c{DOWNLOADERS}, {ctx.sizes.duration:g} s; no goal",
        ),
        row_from(
            results,
            "8 downloads",
            "small",
            "req/s",
            f"{DOWNLOADS_SMALL // 1024} KiB blob, {ctx.sizes.connections} at once",
            note=f"wrk -c{ctx.sizes.connections}, {ctx.sizes.duration:g} s; no goal",
        ),
    ]


# --- 4: many small images, concurrently --------------------------------------------------------


def small_images(ctx: Context) -> list[Row]:
    sizes = ctx.sizes

    def measure(target: Target, rep: int) -> dict[str, float]:
        layers = [[os.urandom(sizes.layer) for _ in range(3)] for _ in range(sizes.images)]
        wall = asyncio.run(push_small(target.url, f"small/{rep}", layers, sizes.clients))
        return {"images/s": sizes.images / wall}

    results = compare(ctx, measure)
    what = (
        f"{sizes.images} images x 3 x {sizes.layer >> 10} KiB, {sizes.clients} clients "
        "(HEAD, POST, PUT per blob; PUT manifest)"
    )
    return [
        row_from(results, "4 small images", "images/s", "images/s", "push", goal=3.0, note=what)
    ]


async def push_small(
    url: str,
    prefix: str,
    layers: list[list[bytes]],
    clients: int,
    chunked: bool = False,
    pushed: list[tuple[str, str]] | None = None,
) -> float:
    """Seconds to push an image of `layers[i]` (and a config) for each i, `clients` at once.
    Each blob as HEAD, POST, PUT with the body (a monolithic upload in two requests);
    `chunked`: HEAD, POST, PATCH with the body, PUT without one, the way skopeo, podman,
    docker and crane push. `pushed` gets each image's (repository, tag)."""
    import aiohttp
    from yarl import URL

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(layers)):
        queue.put_nowait(i)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()

    async def one_image(
        session: aiohttp.ClientSession, repo: str, tag: str, data: list[bytes]
    ) -> None:
        descriptors: list[dict[str, object]] = []
        for media_type, blob in [(OCI_CONFIG, config), *((OCI_LAYER, x) for x in data)]:
            digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
            async with session.head(f"{url}/v2/{repo}/blobs/{digest}") as r:
                exists = r.status == 200
            if not exists:
                async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as r:
                    _expect(r.status, 202, "POST upload")
                    location = r.headers["location"]
                body: bytes | None = blob
                if chunked:
                    patch = URL(url + location_target(location), encoded=True)
                    async with session.patch(patch, data=blob, headers=OCTETS) as r:
                        _expect(r.status, 202, "PATCH upload")
                        location, body = r.headers["location"], None
                put = url + with_query(location_target(location), "digest", digest)
                async with session.put(URL(put, encoded=True), data=body) as r:
                    _expect(r.status, 201, "PUT blob")
            descriptors.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
        manifest = image_manifest(descriptors)
        async with session.put(
            f"{url}/v2/{repo}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        ) as r:
            _expect(r.status, 201, "PUT manifest")
        if pushed is not None:
            pushed.append((repo, tag))

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await one_image(session, f"{prefix}/c{n}", f"v{i}", layers[i])

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session, n) for n in range(clients)))
        return time.perf_counter() - t0


async def pull_small(url: str, images: list[tuple[str, str]], clients: int) -> float:
    """Seconds to pull each (repository, tag) of `images`, `clients` at once, as a client
    does: the manifest by tag, then each blob it names with one GET."""
    import aiohttp

    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            repo, tag = queue.get_nowait()
            path = f"{url}/v2/{repo}/manifests/{tag}"
            async with session.get(path, headers={"Accept": OCI_MANIFEST}) as r:
                _expect(r.status, 200, "GET manifest")
                manifest = json.loads(await r.read())
            for blob in [manifest["config"], *manifest["layers"]]:
                async with session.get(f"{url}/v2/{repo}/blobs/{blob['digest']}") as r:
                    _expect(r.status, 200, "GET blob")
                    if len(await r.read()) != blob["size"]:
                        raise RuntimeError(f"GET blob: not {blob['size']} bytes")

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - t0


# --- 5: the cluster hop (bench/cluster_hop.py when it exists) ---------------------------------


def cluster_stub(ctx: Context) -> list[Row]:
    return [
        Row(
            "5 cluster hop",
            "pull/push via non-owner",
            "ratio",
            note="not measured here yet: see bench/cluster_hop.py",
        )
    ]


WORKLOADS: dict[str, Callable[[Context], list[Row]]] = {
    "6": reference,  # first: the other rows are shown as fractions of its limits
    "1": blobs,  # 1 and 2: push and pull of the same blob
    "3": manifests,
    "4": small_images,
    "8": downloads,
}
