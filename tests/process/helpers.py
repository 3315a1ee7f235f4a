"""Helpers for the process tests: uploads over HTTP, which worker served a connection,
and an integrity check of a storage root (the on-disk truth after crashes)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import RegistryProcess

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCTET = {"Content-Type": "application/octet-stream"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fresh_client(registry: RegistryProcess, timeout: float = 60.0) -> httpx.Client:
    """A client with a connection of its own: a new TCP connection is accepted by whichever
    Granian worker the kernel hands it to."""
    return httpx.Client(base_url=registry.url, timeout=timeout)


def with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def start_upload(c: httpx.Client, repo: str) -> str:
    r = c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, (r.status_code, r.text)
    return r.headers["Location"]


def push_blob(c: httpx.Client, repo: str, data: bytes, chunks: int = 2) -> httpx.Response:
    """POST, one PATCH per chunk (streamed, no Content-Range, as containers/image does),
    PUT with the digest. Returns the PUT response."""
    location = start_upload(c, repo)
    step = max(1, -(-len(data) // chunks))
    for start in range(0, len(data), step):
        r = c.patch(location, content=data[start : start + step], headers=OCTET)
        assert r.status_code == 202, (r.status_code, r.text)
        location = r.headers["Location"]
    return c.put(with_digest(location, sha256(data)))


def push_manifest(
    c: httpx.Client, repo: str, ref: str, config: bytes, layers: list[bytes]
) -> tuple[str, bytes]:
    """A manifest over already pushed blobs; returns (digest, body)."""
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": sha256(x), "size": len(x)} for x in layers
            ],
        }
    ).encode()
    r = c.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, (r.status_code, r.text)
    return sha256(body), body


# --- which process holds a connection -------------------------------------------------


def _tcp_sockets(port: int, state: str) -> dict[int, int]:
    """inode -> remote port of the TCP sockets in `state` whose local port is `port`
    ("01" ESTABLISHED, "0A" LISTEN)."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, st, inode = fields[1], fields[2], fields[3], int(fields[9])
            if st == state and int(local.rsplit(":", 1)[1], 16) == port and inode:
                found[inode] = int(remote.rsplit(":", 1)[1], 16)
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def descendants(pid: int) -> set[int]:
    """All live processes below `pid` (children, grandchildren, ...)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields follow the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parent[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the line; 12 and 13 after the name
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serving_processes(registry: RegistryProcess) -> set[int]:
    """The worker processes: descendants of the server process holding its listening
    socket (so not helper processes such as a multiprocessing resource tracker)."""
    assert registry.proc is not None
    listening = set(_tcp_sockets(registry.port, "0A"))
    return {pid for pid in descendants(registry.proc.pid) if _socket_inodes(pid) & listening}


def connections_by_worker(registry: RegistryProcess) -> dict[int, set[int]]:
    """worker pid -> client ports of the connections it has accepted and holds open.
    Read from /proc on the server side, so the server needs no cooperation (it does
    not say which process answered a request)."""
    conns = _tcp_sockets(registry.port, "01")
    assert registry.proc is not None
    return {
        pid: {conns[i] for i in _socket_inodes(pid) if i in conns}
        for pid in descendants(registry.proc.pid)
    }


def served_by(registry: RegistryProcess, response: httpx.Response) -> int:
    """The pid of the worker holding the (still open, keep-alive) connection that
    carried `response`."""
    stream = response.extensions["network_stream"]
    client_port = int(stream.get_extra_info("client_addr")[1])
    for pid, ports in connections_by_worker(registry).items():
        if client_port in ports:
            return pid
    raise AssertionError(f"no server process holds the connection from port {client_port}")


# --- storage integrity -----------------------------------------------------------------


@dataclass
class StoreReport:
    blobs: int = 0
    indexes: int = 0
    problems: list[str] = field(default_factory=list)


def _is_hex(name: str, alg: str) -> bool:
    lengths = {"sha256": 64, "sha512": 128}
    return len(name) == lengths.get(alg, -1) and all(ch in "0123456789abcdef" for ch in name)


def _file_digest(path: Path, alg: str) -> str:
    h = hashlib.new(alg)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_store(root: Path) -> StoreReport:
    """Every file under <repo>/blobs/<alg>/ is named by the digest of its bytes, every
    index.json is valid JSON whose descriptors point at blobs that exist. Upload sessions
    (.uploads) may hold anything after a crash and are not checked."""
    report = StoreReport()
    repos: set[Path] = set()
    for path in root.rglob("*"):
        if ".uploads" in path.relative_to(root).parts:
            continue
        is_layout_file = path.name in ("index.json", "oci-layout") and path.is_file()
        if is_layout_file or (path.name == "blobs" and path.is_dir()):
            repos.add(path.parent)
    for repo in sorted(repos):
        blobs = repo / "blobs"
        if blobs.is_dir():
            for alg_dir in blobs.iterdir():
                for blob in alg_dir.iterdir() if alg_dir.is_dir() else []:
                    report.blobs += 1
                    if not _is_hex(blob.name, alg_dir.name):
                        report.problems.append(f"stray file in blobs: {blob}")
                    elif _file_digest(blob, alg_dir.name) != blob.name:
                        report.problems.append(f"bytes do not match name: {blob}")
        index_path = repo / "index.json"
        if index_path.exists():
            report.indexes += 1
            try:
                index: Any = json.loads(index_path.read_bytes())
            except ValueError as exc:
                report.problems.append(f"{index_path} is not JSON: {exc}")
                continue
            for desc in index.get("manifests") or []:
                alg, _, hexpart = str(desc.get("digest", "")).partition(":")
                if not (blobs / alg / hexpart).is_file():
                    report.problems.append(f"{index_path} names missing blob {desc}")
    return report


def assert_store_sound(root: Path) -> StoreReport:
    report = check_store(root)
    assert not report.problems, "\n".join(report.problems)
    return report
