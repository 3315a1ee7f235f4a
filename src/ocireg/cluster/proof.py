"""Proof that a forwarded request comes from a member, and who it is for.

The forwarding member signs, with a key derived from the shared `hashKey` (HKDF, so the routing
key itself never keys a MAC), the method, decoded path, raw query, the member it is sent to, the
identity it authenticated, a timestamp and a random nonce. The owner recomputes the MAC, refuses
proofs outside a short validity window and nonces any of its worker processes has seen, and
then trusts the identity.
The body is not covered (it is streamed); run member traffic over TLS where the network between
members is not trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ocireg.identity import Identity

HOP_HEADER = b"x-zot-cluster-hop-count"
PROOF_HEADER = b"x-ocireg-cluster-proof"
IDENTITY_HEADER = b"x-ocireg-cluster-identity"
CLUSTER_HEADERS = frozenset({HOP_HEADER, PROOF_HEADER, IDENTITY_HEADER})

_VERSION = "v1"
# Members' clocks agree to well under a second with NTP; the window only has to cover that and
# the time a request waits in a queue. It also bounds how long a nonce must be remembered.
VALIDITY_SECONDS = 15.0
REPLAY_CACHE_SIZE = 100_000
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")


def derive_key(hash_key: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"ocireg cluster hop proof v1"
    ).derive(hash_key)


@dataclass(frozen=True)
class SignedHop:
    """The headers a forwarded request carries (besides the hop count)."""

    proof: bytes
    identity: bytes


def _message(
    method: str, path: str, query: bytes, target: str, identity: bytes, ts: str, nonce: str
) -> bytes:
    return b"\n".join(
        [
            method.encode(),
            path.encode(),
            query,
            target.encode(),
            identity,
            ts.encode(),
            nonce.encode(),
        ]
    )


def encode_identity(identity: Identity) -> bytes:
    text = json.dumps(identity.to_json(), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode())


def sign(
    key: bytes,
    method: str,
    path: str,
    query: bytes,
    target: str,
    identity: Identity,
    now: float | None = None,
) -> SignedHop:
    ident = encode_identity(identity)
    ts = f"{time.time() if now is None else now:.3f}"
    nonce = os.urandom(16).hex()
    mac = hmac.new(key, _message(method, path, query, target, ident, ts, nonce), hashlib.sha256)
    return SignedHop(f"{_VERSION}:{ts}:{nonce}:{mac.hexdigest()}".encode(), ident)


class ProofError(Exception):
    """Why a proof was refused (logged; the request is then treated as a client's)."""


class SharedNonces:
    """Nonces already accepted by any worker process of this member: an empty file per nonce,
    in a directory per validity window, under the instance's private directory. Creating the
    file with O_EXCL decides atomically, across processes, who saw a nonce first; no lock, no
    server, nothing to corrupt. Directories of windows no proof can fall in any more are
    removed by whichever process first moves past them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._swept = -1

    def first_sight(self, nonce: str, sent_at: float, now: float) -> bool:
        if not _NONCE_RE.match(nonce):
            return False  # signed, so a member's; but never a path we did not shape
        window = self.directory / str(int(sent_at // VALIDITY_SECONDS))
        try:
            try:
                fd = os.open(window / nonce, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileNotFoundError:
                window.mkdir(parents=True, exist_ok=True)
                fd = os.open(window / nonce, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:
            # Refuse rather than risk a replay: the request goes on as a client's.
            raise ProofError(f"replay cache {self.directory}: {exc.strerror}") from None
        os.close(fd)
        self._sweep(now)
        return True

    def _sweep(self, now: float) -> None:
        # A proof of window w is accepted only while now is within VALIDITY_SECONDS of its
        # timestamp, i.e. in windows w-1..w+1: anything older than w-2 is dead.
        current = int(now // VALIDITY_SECONDS)
        if current == self._swept:
            return
        self._swept = current
        try:
            dead = [e.path for e in os.scandir(self.directory) if _is_dead(e.name, current)]
        except OSError:
            return
        if dead:  # possibly many files: not on the event loop
            threading.Thread(target=_remove_all, args=(dead,), daemon=True).start()


def _is_dead(name: str, current: int) -> bool:
    return name.isdigit() and int(name) < current - 2


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)  # another process may be removing it too


class ProofVerifier:
    """Checks proofs for one member.

    With `replay_dir` (what a server passes) a nonce is accepted once by the member, whichever
    of its worker processes sees it (`SharedNonces`); without it, once per process. Proofs are
    bound to the target member, so they cannot be replayed to another member either.
    """

    def __init__(self, key: bytes, local_member: str, replay_dir: Path | None = None) -> None:
        self._key = key
        self._local = local_member
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._shared = SharedNonces(replay_dir) if replay_dir is not None else None

    def verify(
        self,
        method: str,
        path: str,
        query: bytes,
        proof: bytes | None,
        identity: bytes | None,
        now: float | None = None,
    ) -> Identity:
        if not proof or identity is None:
            raise ProofError("missing proof")
        try:
            version, ts, nonce, mac = proof.decode("ascii").split(":")
            sent_at = float(ts)
        except (UnicodeDecodeError, ValueError):
            raise ProofError("malformed proof") from None
        if not math.isfinite(sent_at):  # "nan" passes any comparison of its age
            raise ProofError("malformed proof")
        if version != _VERSION:
            raise ProofError(f"unknown proof version {version!r}")
        expected = hmac.new(
            self._key,
            _message(method, path, query, self._local, identity, ts, nonce),
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, mac):
            raise ProofError("bad signature")
        now = time.time() if now is None else now
        if abs(now - sent_at) > VALIDITY_SECONDS:
            raise ProofError(f"stale proof ({now - sent_at:.1f}s old)")
        self._forget_expired(now)
        if nonce in self._seen:
            raise ProofError("replayed proof")
        if self._shared is not None and not self._shared.first_sight(nonce, sent_at, now):
            raise ProofError("replayed proof (seen by another worker)")
        self._seen[nonce] = sent_at
        try:
            data = json.loads(base64.urlsafe_b64decode(identity))
            if not isinstance(data, dict):
                raise ValueError("identity is not an object")
            return Identity.from_json(data)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ProofError(f"bad identity: {exc}") from None

    def _forget_expired(self, now: float) -> None:
        # Insertion order is roughly time order; stop at the first nonce still in its window.
        # A full cache drops its oldest nonce: memory stays bounded, and reaching the limit
        # takes more forwarded requests per second in one worker than it can serve.
        while self._seen:
            nonce, sent_at = next(iter(self._seen.items()))
            if now - sent_at <= VALIDITY_SECONDS and len(self._seen) < REPLAY_CACHE_SIZE:
                break
            del self._seen[nonce]
