"""Proof that a forwarded request comes from a member, and who it is for.

The forwarding member signs, with a key derived from the shared `hashKey` (HKDF, so the routing
key itself never keys a MAC), the method, decoded path, raw query, the member it is sent to, the
identity it authenticated, a timestamp and a random nonce. The owner recomputes the MAC, refuses
proofs outside a short validity window and nonces it has seen, and then trusts the identity.
The body is not covered (it is streamed); run member traffic over TLS where the network between
members is not trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

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


class ProofVerifier:
    """Checks proofs for one member. Holds the replay cache of this worker process.

    The cache is per process: a proof replayed to another worker of the same member within the
    validity window is not caught here. Proofs are bound to the target member, so they cannot be
    replayed elsewhere, and the short window limits the exposure; a shared cache (Redis) would
    close it at the cost of a round trip per forwarded request.
    """

    def __init__(self, key: bytes, local_member: str) -> None:
        self._key = key
        self._local = local_member
        self._seen: OrderedDict[str, float] = OrderedDict()

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
