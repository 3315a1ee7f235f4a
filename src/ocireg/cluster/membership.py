"""Which member of `cluster.members` this instance is.

A member is this instance when one of the addresses its host resolves to is assigned to a local
interface and its port is the configured `http.port` (zot's rule: `http.address` does not take
part, a member listens on a wildcard or on one of its addresses). Names that do not resolve yet
(a pod whose DNS record appears a moment after it starts) are retried for a bounded time; start-up
fails, with the members and the local addresses in the message, only when this instance is not
in the list.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import itertools
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ocireg.cluster.routing import owner_of
from ocireg.config import Config
from ocireg.errors import ConfigError

log = logging.getLogger("ocireg.cluster")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[IPAddress]]

DEFAULT_RESOLVE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Membership:
    """The member list as every member sees it, and which entry is this instance."""

    members: tuple[str, ...]
    local_index: int
    hash_key: bytes
    routing: str = "modulo"

    @property
    def local_member(self) -> str:
        return self.members[self.local_index]

    def owner_of(self, repository: str) -> int:
        return owner_of(repository, self.hash_key, self.members, self.routing)

    def owner_member(self, repository: str) -> str:
        """The address of the member that owns `repository` (`owner_of` is its place)."""
        return self.members[self.owner_of(repository)]

    @property
    def fingerprint(self) -> str:
        """Equal on two members exactly when they route alike (the key stays out of it)."""
        text = "\n".join([self.routing, *self.members])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_member(member: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` -> (host, port); config validation already checked the shape."""
    host, _, port = member.rpartition(":")
    return host.strip("[]"), int(port)


def _normal(ip: IPAddress) -> IPAddress:
    # ::ffff:127.0.0.1 is 127.0.0.1, as Go's IP.Equal treats it.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def resolve(host: str) -> list[IPAddress]:
    """The addresses of `host` (an IP literal is its own address); raises OSError if none."""
    try:
        return [_normal(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [_normal(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos]


def local_addresses() -> set[IPAddress]:
    """Every address assigned to a local interface (Linux /proc; loopback always included)."""
    found: set[IPAddress] = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if line.strip() == "/32 host LOCAL" and "|--" in previous:
                found.add(ipaddress.ip_address(previous.split("|--")[1].strip()))
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.add(ipaddress.ip_address(":".join(raw[i : i + 4] for i in range(0, 32, 4))))
    except (OSError, IndexError, ValueError):
        pass
    if len(found) == 2:  # not Linux: fall back to what the host name resolves to
        with contextlib.suppress(OSError):
            found.update(resolve(socket.gethostname()))
    return found


def _is_local(ip: IPAddress, local: set[IPAddress]) -> bool:
    # All of 127.0.0.0/8 is local on Linux although only 127.0.0.1 is listed as a host address.
    return ip in local or ip.is_loopback


def find_local_member(
    members: Sequence[str],
    port: int,
    resolver: Resolver = resolve,
    timeout: float = DEFAULT_RESOLVE_TIMEOUT,
    local: set[IPAddress] | None = None,
) -> int:
    """Index of this instance in `members`; ConfigError when it is not a member.

    Retries names that do not resolve until `timeout` seconds have passed, unless a member that
    did resolve already matched.
    """
    local = local if local is not None else local_addresses()
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        unresolved: list[str] = []
        for index, member in enumerate(members):
            host, member_port = split_member(member)
            if member_port != port:
                continue
            try:
                addresses = resolver(host)
            except OSError as exc:
                unresolved.append(f"{member} ({exc.strerror or exc})")
                continue
            if any(_is_local(ip, local) for ip in addresses):
                return index
        if not unresolved:
            raise ConfigError(
                "cluster.members",
                f"this instance is not a member: none of {list(members)} is a local address "
                f"with http.port {port}; local addresses: "
                f"{', '.join(sorted(str(a) for a in local))}",
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConfigError(
                "cluster.members",
                f"cannot tell which member this instance is: {', '.join(unresolved)} did not "
                f"resolve within {timeout:g}s and no other member of {list(members)} is a "
                f"local address with http.port {port}; local addresses: "
                f"{', '.join(sorted(str(a) for a in local))}",
            )
        log.warning(
            "cluster member names do not resolve yet; retrying",
            extra={"unresolved": unresolved, "retry_in_s": round(min(delay, remaining), 2)},
        )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)


def membership_from_config(
    config: Config, local_index: int | None = None, timeout: float = DEFAULT_RESOLVE_TIMEOUT
) -> Membership | None:
    """The cluster this instance is part of; None when there is nothing to route (0-1 members)."""
    cluster = config.cluster
    if cluster is None or len(cluster.members) < 2:
        return None
    if local_index is None:
        local_index = find_local_member(cluster.members, config.http.port, timeout=timeout)
    if not 0 <= local_index < len(cluster.members):
        raise ConfigError("cluster.members", f"no member number {local_index}")
    return Membership(cluster.members, local_index, cluster.hash_key, cluster.routing)
