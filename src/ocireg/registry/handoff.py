"""Tag writes handed between the worker processes of one instance (cross-worker group commit).

The worker holding a repository's lock writes index.json for the others too: a worker that
finds the lock taken sends its queued tag writes to the holder, whose next write includes
them, and answers its clients once the holder says they are written (registry/writer.py).
This module is the transport only: one listening socket per process and one connection per
peer, both made on first use.

The sockets live in Linux's abstract namespace: nothing on disk to clean up after a crash
(a socket vanishes with its process), and no path-length limit from a deep storage root.
Anyone on the machine may connect to an abstract socket, so a connection from another user
is closed unread (SO_PEERCRED). Elsewhere than on Linux there is no handoff, and every worker
writes its own tags, as before.

Frames are a 4-byte big-endian length and a JSON document:
  request  {"id": n, "dir": <lock directory>, "repo": <name>, "items": [<item>, ...],
            "coming": <how many more the sender has on their way to the same repository>}
  answer   {"id": n, "written": [true | false, ...]}   (one per item)
`false`, a malformed answer, a lost connection or no answer in time all mean "not written
by me": the sender then writes the item itself, under the repository lock (a flock, which the
kernel takes back from a holder that died). Only changes whose effect is the same when
applied twice are handed over, and a holder writes what it took before it lets the lock go,
so a holder that wrote and died (or was slow) before answering costs a repeated, harmless
write, made after its own, never a lost or a doubled one.

Every wait on the holder is bounded: CONNECT_MAX to reach its socket (the backlog of a
stopped holder fills up), ANSWER_MAX for its answer (a stopped holder, or one that lost the
request). A sender still waiting after ANSWER_SLOW says so in the log (SLOW). A connection
that timed out is closed, failing whatever else waits on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("ocireg.registry")

# (repository, items, how many more the sender has on their way, the sender) -> written
Accept = Callable[[str, list[dict[str, Any]], int, int], Awaitable[list[bool]]]

AVAILABLE = sys.platform == "linux"
FRAME_MAX = 64 << 20  # a batch of manifests (4 MiB each at most), with room to spare
CONNECT_MAX = 1.0  # seconds
ANSWER_SLOW = 1.0  # seconds
ANSWER_MAX = 10.0  # seconds: a write costs milliseconds, even at 10,000 tags on a busy disk
SLOW = "handed-over index writes waiting for the lock holder"  # logged after ANSWER_SLOW
_LENGTH = struct.Struct(">I")
_CREDENTIALS = struct.Struct("3i")  # pid, uid, gid


class HandoffFailed(Exception):
    """The holder could not be asked, or did not answer: the sender writes its items."""


class Handoff:
    """This process's end: where other workers hand their items to us (`address`), and
    how we hand ours to the worker holding a lock (`hand`)."""

    def __init__(self, lock_dir: Path, accept: Accept) -> None:
        self.lock_dir = str(lock_dir)
        self.accept = accept
        self._pid = 0
        self._address = b""
        self._server: asyncio.AbstractServer | None = None
        self._peers: dict[bytes, _Peer] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._connections = 0

    async def address(self) -> bytes:
        """Where this process takes items (noted in the lock files it holds); empty when it
        cannot take any. Made on first use in each process: Granian forks its workers."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._server, self._peers, self._address = None, {}, b""
            if AVAILABLE:
                await self._listen()
        return self._address

    async def _listen(self) -> None:
        name = f"\0ocireg-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except OSError as exc:
            sock.close()
            log.warning("index writes not shared between workers", extra={"error": str(exc)})
            return
        self._address = name.encode()

    async def hand(
        self, address: bytes, repo: str, items: list[dict[str, Any]], coming: int
    ) -> list[bool]:
        """Which of `items` the process at `address` wrote into `repo`'s index."""
        peer = self._peers.get(address)
        if peer is None or peer.closed:
            peer = await self._connect(address)
        request = {"dir": self.lock_dir, "repo": repo, "items": items, "coming": coming}
        answer = peer.ask(request)
        if not await _within(answer, ANSWER_SLOW):
            slow = {"repo": repo, "writes": len(items), "pid": os.getpid(), "holder": _pid(address)}
            log.warning(SLOW, extra=slow)
            if not await _within(answer, ANSWER_MAX - ANSWER_SLOW):
                # Stopped, or lost the request: it gets EOF, and the sender writes.
                peer.close(f"no answer in {ANSWER_MAX:.0f} s")
        written = answer.result()  # raises HandoffFailed when the connection was lost
        if len(written) != len(items) or not all(isinstance(w, bool) for w in written):
            raise HandoffFailed(f"malformed answer from {address!r}")
        return written

    async def _connect(self, address: bytes) -> _Peer:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(CONNECT_MAX):
                await asyncio.get_running_loop().sock_connect(sock, address.decode())
                reader, writer = await asyncio.open_unix_connection(sock=sock, limit=FRAME_MAX)
        except (OSError, UnicodeDecodeError, TimeoutError) as exc:  # gone, stopped, never was
            sock.close()
            raise HandoffFailed(str(exc) or "connect timed out") from exc
        peer = _Peer(reader, writer)
        old = self._peers.get(address)
        if old is not None and not old.closed:  # made meanwhile by another item
            peer.close()
            return old
        self._peers[address] = peer
        return peer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
            if _CREDENTIALS.unpack(raw)[1] != os.getuid():
                return
            self._connections += 1
            sender = self._connections
            while (request := await _read_frame(reader)) is not None:
                task = asyncio.create_task(self._answer(request, sender, writer))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass  # the peer went away, or sent nonsense: it writes its items itself
        finally:
            writer.close()

    async def _answer(self, request: Any, sender: int, writer: asyncio.StreamWriter) -> None:
        if not isinstance(request, dict):
            return
        items, repo, coming = request.get("items"), request.get("repo"), request.get("coming")
        if not isinstance(items, list) or not isinstance(repo, str):
            return
        written = [False] * len(items)
        if request.get("dir") == self.lock_dir and all(isinstance(i, dict) for i in items):
            try:
                written = await self.accept(repo, items, _count(coming), sender)
            except Exception:
                log.exception("handed-over index writes failed", extra={"repo": repo})
        if not writer.is_closing():
            writer.write(_frame({"id": request.get("id"), "written": written}))

    async def close(self) -> None:
        for peer in self._peers.values():
            peer.close()
        self._peers = {}
        if self._server is not None and self._pid == os.getpid():
            self._server.close()
        self._server = None


class _Peer:
    """A connection to another worker: requests go out as they come, answers are matched
    by id, and a lost connection fails every request still waiting."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._waiting: dict[int, asyncio.Future[list[Any]]] = {}
        self._next = 0
        self.closed = False
        self._reading = asyncio.create_task(self._read(reader))

    def ask(self, request: dict[str, Any]) -> asyncio.Future[list[Any]]:
        """The answer to come (failed with HandoffFailed when the connection is lost)."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(HandoffFailed("connection closed"))
            return future
        self._next += 1
        self._waiting[self._next] = future
        self._writer.write(_frame({**request, "id": self._next}))
        return future

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while (answer := await _read_frame(reader)) is not None:
                if not isinstance(answer, dict):
                    raise ValueError("not an answer")
                future = self._waiting.pop(answer.get("id", 0), None)
                written = answer.get("written")
                if future is not None and not future.done():
                    future.set_result(written if isinstance(written, list) else [])
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self.close()

    def close(self, why: str = "connection lost") -> None:
        self.closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(HandoffFailed(why))
        self._waiting = {}
        self._writer.close()
        if self._reading is not asyncio.current_task():
            self._reading.cancel()


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """The next document, or None at a clean end of the stream."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    (length,) = _LENGTH.unpack(head)
    if length > FRAME_MAX:
        raise ValueError(f"frame of {length} bytes")
    return json.loads(await reader.readexactly(length))


async def _within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Whether `future` is done within `seconds` (it is left as it is either way)."""
    done, _ = await asyncio.wait({future}, timeout=seconds)
    return bool(done)


def _pid(address: bytes) -> str:
    """The process named in an address of ours (`_listen`), for the log."""
    return address.split(b"-")[1].decode(errors="replace") if address.count(b"-") >= 2 else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 1 << 20 else 0


def _frame(doc: Any) -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body
