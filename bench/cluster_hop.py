"""What one cluster hop costs: a large blob pushed and pulled through a non-owner member versus
directly through its owner, and the proxying member's peak memory.

    python bench/cluster_hop.py [--size-mib 1024] [--runs 3] [--workers 1]

Starts two members over one shared root on loopback (the repository is owned by member 1,
member 0 proxies), prints a small table: median MB/s per path, the ratio via-proxy/direct, and
the peak RSS (VmHWM from /proc) of member 0's worker processes. Standalone: needs only the
package and tests/support (run from the repository root).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from tests.support.cluster import repo_owned_by, running_cluster  # noqa: E402
from tests.support.server import RegistryProcess  # noqa: E402

PIECE = 4 * 1024 * 1024  # the client sends and reads in pieces of this size


def _payload(size: int) -> tuple[bytes, str]:
    """A random piece repeated up to `size` bytes, and the digest of the whole."""
    piece = os.urandom(PIECE)
    h = hashlib.sha256()
    for offset in range(0, size, PIECE):
        h.update(piece[: min(PIECE, size - offset)])
    return piece, "sha256:" + h.hexdigest()


def _conn(member: RegistryProcess) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", member.port, timeout=600)


def push(member: RegistryProcess, repo: str, piece: bytes, size: int, digest: str) -> float:
    conn = _conn(member)
    try:
        conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        r = conn.getresponse()
        r.read()
        assert r.status == 202, r.status
        location = r.getheader("location")
        started = time.perf_counter()
        conn.putrequest("PUT", f"{location}?digest={digest}")
        conn.putheader("Content-Length", str(size))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        for offset in range(0, size, PIECE):
            conn.send(piece[: min(PIECE, size - offset)])
        r = conn.getresponse()
        r.read()
        elapsed = time.perf_counter() - started
        assert r.status == 201, (r.status, r.getheaders())
        return size / elapsed / 1e6
    finally:
        conn.close()


def pull(member: RegistryProcess, repo: str, size: int, digest: str) -> float:
    conn = _conn(member)
    try:
        started = time.perf_counter()
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        r = conn.getresponse()
        assert r.status == 200, r.status
        return read_body(r, size, started)
    finally:
        conn.close()


def read_body(r: http.client.HTTPResponse, size: int, started: float) -> float:
    """MB/s of a download begun at `started` (perf_counter), once `r`'s `size` bytes are read."""
    buffer = bytearray(PIECE)
    received = 0
    while n := r.readinto(buffer):
        received += n
    elapsed = time.perf_counter() - started
    assert received == size, (received, size)
    return size / elapsed / 1e6


def peak_rss_mib(member: RegistryProcess) -> float:
    """Largest VmHWM among the member's worker processes."""
    peaks = []
    for pid in member.worker_pids():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per member")
    args = parser.parse_args(argv)
    size = args.size_mib * 1024 * 1024
    piece, digest = _payload(size)
    results: dict[str, list[float]] = {"push": [], "push via": [], "pull": [], "pull via": []}
    with (
        tempfile.TemporaryDirectory(prefix="cluster-hop-") as tmp,
        running_cluster(Path(tmp), count=2, workers=args.workers) as (proxy, owner),
    ):
        direct_repo = repo_owned_by(1, count=2, prefix="bench/direct")
        hop_repo = repo_owned_by(1, count=2, prefix="bench/hop")
        for _ in range(args.runs):
            results["push"].append(push(owner, direct_repo, piece, size, digest))
            results["push via"].append(push(proxy, hop_repo, piece, size, digest))
            results["pull"].append(pull(owner, direct_repo, size, digest))
            results["pull via"].append(pull(proxy, hop_repo, size, digest))
        rss = peak_rss_mib(proxy)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{args.size_mib} MiB blob, {args.runs} runs, {args.workers} worker(s)/member, medians")
    print(f"{'':6} {'owner MB/s':>11} {'via member MB/s':>16} {'ratio':>6}")
    for op in ("push", "pull"):
        direct, hop = med[op], med[f"{op} via"]
        print(f"{op:6} {direct:11.0f} {hop:16.0f} {hop / direct:6.2f}")
    print(f"proxying member peak RSS (VmHWM, largest worker): {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
