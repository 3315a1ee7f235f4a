"""What one worker process knows of the other members: which share its storage, which are up.

**Shared storage.** Every member keeps a small record in storage,
`.ocireg/members/<hash of its address>.json`, rewritten now and then. A member that finds a
peer's record in its own storage knows that peer shares it: that is a property of the
storage, so it is remembered for the life of the process, even when the peer dies. zot
members write no records; `cluster.sharedStorage: true` declares every member shared, and
`false` turns the whole mode off (zot's behaviour: everything goes to the owner).

**Liveness.** A prober asks every peer's `/livez` once a second. A refused connection marks
the peer down at once, a probe that times out twice in a row too, and so does a forwarded
request that could not reach it; one good answer marks it up again. A peer that has not
answered yet is not marked down by probes in the first STARTUP_GRACE seconds. Only shared
peers are ever failed over (`ClusterForwardMiddleware`): with separate storage a down owner
still means 503, since nobody else holds its data.

**A list that changes.** Peers are known by address, not by place in the list, so a new
member list (`update`, applied while serving: server/reload.py) keeps what was learnt of the
members that stay, and a request that began under the previous list still names the member
it meant.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ocireg.cluster.membership import Membership
from ocireg.cluster.proof import HOP_HEADER, IDENTITY_HEADER, PROOF_HEADER, derive_key, sign
from ocireg.cluster.tls import client_ssl_context
from ocireg.config import Config
from ocireg.identity import Identity
from ocireg.storage import PathNotFound, StorageDriver, StorageError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("ocireg.cluster")

RECORDS_DIR = ".ocireg/members"
RECORD_EVERY = 30.0  # rewrite our record this often (seconds)
RECORD_FRESH = 600.0  # a record older than this proves nothing about today's storage
# Look for the records of the peers not found yet this often: every peer is found within
# this long of its first record, and so is a member added to the list later (`update`).
LOOK_EVERY = 2.0
FINGERPRINT_HEADER = b"x-ocireg-cluster-fingerprint"
INDEX_VERSIONS_HEADER = b"x-ocireg-index-versions"
PROBE_EVERY = 1.0
# A peer that has never answered is not marked down during this long after start: members
# of a cluster start one after the other, and a member still starting must not have its
# repositories' maintenance (GC, scrub, periodic sync) taken over by the first one up.
STARTUP_GRACE = 30.0
PROBE_TIMEOUT = 1.5
TIMEOUTS_TO_DOWN = 2


@dataclass
class PeerState:
    shared: bool = False
    up: bool = True  # assumed until a probe or a request says otherwise
    timeouts: int = 0
    last_contact: float = 0.0  # wall clock of the last good answer, 0 if none yet
    changed: float = 0.0
    added: float = field(default_factory=time.monotonic)  # when this process began to probe it
    fingerprint: str | None = None  # how the peer routes (None: not an ocireg, or not known)
    index_versions: bool = False  # it keeps the index-version keys (registry/versions.py)

    def agrees(self, fingerprint: str) -> bool:
        """False when the peer announced a routing fingerprint other than `fingerprint`."""
        return self.fingerprint in (None, fingerprint)


def record_path(member: str) -> str:
    return f"{RECORDS_DIR}/{hashlib.sha256(member.encode()).hexdigest()[:24]}.json"


class Peers:
    def __init__(
        self,
        membership: Membership,
        shared_storage: bool | None,
        ssl_context: ssl.SSLContext | None = None,
        on_round: Callable[[int, int], None] | None = None,
    ) -> None:
        self.membership = membership
        # Called after each probe round with (members up, members routing differently).
        self.on_round = on_round
        self.mode = shared_storage  # None: find out
        self.scheme = "https" if ssl_context else "http"
        self._ssl: ssl.SSLContext | bool = ssl_context or False
        self.state: dict[str, PeerState] = {}  # every member but this one, by address
        self.update(membership)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._key = derive_key(membership.hash_key)
        self._driver: StorageDriver | None = None

    def update(self, membership: Membership) -> None:
        """Route by `membership` from now on: the members that stay keep their state, a new
        one is assumed up (and is given STARTUP_GRACE) until its probes say otherwise."""
        known = self.state
        self.membership = membership
        self.state = {
            member: known.get(member) or PeerState(shared=self.mode is True)
            for member in membership.members
            if member != membership.local_member
        }

    # --- what the routing asks -----------------------------------------------------------

    def shares(self, member: str) -> bool:
        """True when `member` is known to use this member's storage."""
        peer = self.state.get(member)
        return peer is not None and peer.shared

    async def shares_now(self, member: str) -> bool:
        """`shares`, after reading `member`'s record at once if it has not been found yet: a
        member that just joined is known to share the storage before the next look."""
        peer = self.state.get(member)
        if peer is None or peer.shared or self.mode is not None or self._driver is None:
            return self.shares(member)
        try:
            found = await self._has_record(self._driver, member, time.time())
        except StorageError:
            return False
        if found:
            self._found_shared(member)
        return found

    def all_ocireg(self) -> bool:
        """True once every peer has answered a probe as an ocireg (with a fingerprint): no
        zot member, and nobody unknown, writes this cluster's storage."""
        return all(peer.fingerprint is not None for peer in self.state.values())

    def all_keep_index_versions(self) -> bool:
        """`all_ocireg`, and every peer said at its last answer that it keeps the
        index-version keys when it writes (a member of an older version does not). A peer
        that goes down is not believed again until it answers: it may come back older."""
        return all(
            peer.fingerprint is not None and peer.index_versions for peer in self.state.values()
        )

    def disagrees(self, member: str) -> bool:
        """True when `member` announced a routing fingerprint other than ours."""
        peer = self.state.get(member)
        return peer is not None and not peer.agrees(self.membership.fingerprint)

    def is_up(self, member: str) -> bool:
        peer = self.state.get(member)
        return peer is None or peer.up

    def mark_down(self, member: str, reason: str) -> None:
        peer = self.state.get(member)
        if peer is not None:
            peer.index_versions = False
        if peer is not None and peer.up:
            peer.up = False
            peer.changed = time.time()
            log.warning("cluster member down", extra={"member": member, "reason": reason})

    def _mark_up(self, member: str, peer: PeerState) -> None:
        peer.timeouts = 0
        peer.last_contact = time.time()
        if not peer.up:
            peer.up = True
            peer.changed = peer.last_contact
            log.warning("cluster member up", extra={"member": member})

    def _note_fingerprint(self, member: str, peer: PeerState, fingerprint: str | None) -> None:
        if fingerprint == peer.fingerprint:
            return
        peer.fingerprint = fingerprint
        if self.disagrees(member):
            log.warning(
                "cluster member routes differently: the member lists (or routing) differ",
                extra={
                    "member": member,
                    "its_fingerprint": fingerprint,
                    "our_fingerprint": self.membership.fingerprint,
                },
            )

    def maintainer_of(self, owner: str) -> str:
        """Who maintains (GC, scrub) the repositories of `owner`: the owner while it is up
        or does not share this storage; else the first member, in list order, that is up
        and shares it (this member counts as both)."""
        local = self.membership.local_member
        if owner == local or self.is_up(owner) or not self.shares(owner):
            return owner
        for member in self.membership.members:
            if member == local or (member != owner and self.is_up(member) and self.shares(member)):
                return member
        return owner

    # --- background work -----------------------------------------------------------------

    def start(self, driver: StorageDriver) -> None:
        self._driver = driver
        for peer in self.state.values():
            peer.added = time.monotonic()
        self._tasks = [asyncio.create_task(self._probe_loop(), name="ocireg-peer-probes")]
        if self.mode is None:
            self._tasks.append(asyncio.create_task(self._records(driver), name="ocireg-peers"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    async def _records(self, driver: StorageDriver) -> None:
        """Keep our record fresh; read the records of the peers not found yet. A look with
        every peer found reads nothing."""
        me = self.membership.local_member
        wrote = 0.0
        while True:
            now = time.time()
            try:
                if now - wrote >= RECORD_EVERY:
                    body = json.dumps({"member": me, "time": now}).encode()
                    await driver.put_content(record_path(me), body)
                    wrote = now
                for member, peer in list(self.state.items()):
                    if not peer.shared and await self._has_record(driver, member, now):
                        self._found_shared(member)
            except StorageError as exc:
                log.warning("cluster member records unavailable", extra={"error": str(exc)})
            await asyncio.sleep(LOOK_EVERY)

    def _found_shared(self, member: str) -> None:
        peer = self.state.get(member)
        if peer is not None and not peer.shared:
            peer.shared = True
            log.info("cluster member shares this storage", extra={"member": member})

    async def _has_record(self, driver: StorageDriver, member: str, now: float) -> bool:
        try:
            record = json.loads(await driver.get_content(record_path(member)))
        except (PathNotFound, ValueError):
            return False
        stamp = record.get("time") if isinstance(record, dict) else None
        return (
            record.get("member") == member
            and isinstance(stamp, int | float)
            and now - stamp < RECORD_FRESH
        )

    def separate(self) -> list[str]:
        """The members not known to share this member's storage: each holds data of its own."""
        return [member for member in self.state if not self.shares(member)]

    async def ask(
        self,
        member: str,
        path: str,
        query: Mapping[str, str],
        identity: Identity,
        within: float,
    ) -> Any:
        """GET `path` on `member` as a forwarded request made for `identity` (signed
        like the proxy's hops, so the member authorizes that identity and answers from its
        own storage alone), and its JSON answer, within `within` seconds. Raises
        `PeerUnanswered` on anything else."""
        raw = urlencode(query)
        hop = sign(self._key, "GET", path, raw.encode(), member, identity)
        headers = {
            HOP_HEADER.decode(): "1",
            PROOF_HEADER.decode(): hop.proof.decode(),
            IDENTITY_HEADER.decode(): hop.identity.decode(),
        }
        import aiohttp  # see _client
        from yarl import URL

        url = URL.build(
            scheme=self.scheme, authority=member, path=path, query_string=raw, encoded=True
        )
        try:
            async with self._client().get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=within)
            ) as response:
                if response.status != 200:
                    raise PeerUnanswered(member, f"answered {response.status}")
                return await response.json()
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise PeerUnanswered(member, f"{type(exc).__name__}: {exc}") from None

    def _client(self) -> aiohttp.ClientSession:
        # aiohttp is imported when a peer is first asked: ~120 ms of a worker's start that
        # an instance outside a cluster never needs (gather.py imports this module).
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
                connector=aiohttp.TCPConnector(ssl=self._ssl),
            )
        return self._session

    async def _probe_loop(self) -> None:
        self._client()
        while True:
            # A list applied meanwhile (`update`) is probed from the next round on; a probe
            # of a member that left updates a state nobody reads any more.
            await asyncio.gather(*(self._probe(m, peer) for m, peer in self.state.items()))
            if self.on_round is not None:
                up = 1 + sum(peer.up for peer in self.state.values())
                self.on_round(up, sum(self.disagrees(member) for member in self.state))
            await asyncio.sleep(PROBE_EVERY)

    async def _probe(self, member: str, peer: PeerState) -> None:
        import aiohttp  # see _client

        url = f"{self.scheme}://{member}/livez"
        try:
            async with self._client().get(url) as response:
                if response.status == 200:
                    self._mark_up(member, peer)
                    fingerprint = response.headers.get(FINGERPRINT_HEADER.decode())
                    self._note_fingerprint(member, peer, fingerprint)
                    keeps = response.headers.get(INDEX_VERSIONS_HEADER.decode()) == "1"
                    peer.index_versions = keeps
                    return
                reason = f"/livez answered {response.status}"
        except TimeoutError:
            peer.timeouts += 1
            if peer.timeouts < TIMEOUTS_TO_DOWN:
                return
            reason = f"/livez did not answer within {PROBE_TIMEOUT}s, {peer.timeouts} times"
        except aiohttp.ClientError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        starting = time.monotonic() - peer.added < STARTUP_GRACE
        if starting and peer.last_contact == 0:
            return  # not started yet, as far as we know: assumed up, as before any probe
        self.mark_down(member, reason)


class PeerUnanswered(Exception):
    """A member that did not give a usable answer to `Peers.ask`."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"{member}: {reason}")
        self.member = member
        self.reason = reason


def peers_from_config(
    config: Config,
    membership: Membership | None,
    on_round: Callable[[int, int], None] | None = None,
) -> Peers | None:
    if membership is None or config.cluster is None:
        return None
    ssl_context = client_ssl_context(config)
    return Peers(membership, config.cluster.shared_storage, ssl_context, on_round)
