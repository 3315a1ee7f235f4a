"""Downloads whose clients stop reading, and what they cost the serving worker process
(read from /proc: its resident memory and what it has read so far)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.server import wait_until


def bytes_read(pid: int) -> int:
    """What the process has read with read(2)-like calls so far (files and sockets)."""
    with open(f"/proc/{pid}/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["rchar"])


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def begun_download(
    port: int, path: str, first: int = 1024 * 1024, range_header: str | None = None
) -> socket.socket:
    """A connection with small receive buffers that sent `GET path` (with `Range:
    range_header` if given) and read `first` bytes of the answer; the caller stops reading
    (or closes it) from there."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    asked = f"Range: {range_header}\r\n" if range_header else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{asked}\r\n".encode())
    got = 0
    while got < first:
        piece = sock.recv(256 * 1024)
        assert piece, "the server closed the connection early"
        got += len(piece)
    return sock


def reading_stopped(pid: int, interval: float = 0.2) -> None:
    """Wait until the process reads nothing more during `interval` seconds (20 s at most)."""
    last = [-1]

    def settled() -> bool:
        now = bytes_read(pid)
        done, last[0] = now == last[0], now
        return done

    wait_until(settled, timeout=20, interval=interval)


@contextmanager
def stalled_downloads(
    port: int, path: str, clients: int, worker: int, range_header: str | None = None
) -> Iterator[None]:
    """`clients` connections that GET `path` (with `Range: range_header` if given), read
    1 MiB of the body and then stop reading (small receive buffers); yields once `worker`
    has stopped reading for them, closes them on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(clients):
            socks.append(begun_download(port, path, range_header=range_header))
        reading_stopped(worker)  # every download is stalled once the worker stops reading
        yield
    finally:
        for sock in socks:
            sock.close()
