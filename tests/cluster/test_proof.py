"""Hop proofs: what a member signs verifies once, at the member it was meant for, in time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ocireg.cluster.proof import VALIDITY_SECONDS, ProofError, ProofVerifier, derive_key, sign
from ocireg.identity import ANONYMOUS, Identity
from tests.support.server import wait_until

KEY = derive_key(b"loremipsumdolors")
ALICE = Identity(user="alice", groups=("dev",), method="basic")


def _verifier(member: str = "10.0.0.2:5000") -> ProofVerifier:
    return ProofVerifier(KEY, member)


def test_a_signed_identity_verifies_and_round_trips() -> None:
    hop = sign(KEY, "PUT", "/v2/a/manifests/v1", b"x=1", "10.0.0.2:5000", ALICE)
    got = _verifier().verify("PUT", "/v2/a/manifests/v1", b"x=1", hop.proof, hop.identity)
    assert got == ALICE


@pytest.mark.parametrize(
    ("method", "path", "query", "member"),
    [
        ("GET", "/v2/a/manifests/v1", b"x=1", "10.0.0.2:5000"),
        ("PUT", "/v2/b/manifests/v1", b"x=1", "10.0.0.2:5000"),
        ("PUT", "/v2/a/manifests/v1", b"x=2", "10.0.0.2:5000"),
        ("PUT", "/v2/a/manifests/v1", b"x=1", "10.0.0.3:5000"),
    ],
)
def test_a_proof_covers_method_path_query_and_target(
    method: str, path: str, query: bytes, member: str
) -> None:
    hop = sign(KEY, "PUT", "/v2/a/manifests/v1", b"x=1", "10.0.0.2:5000", ANONYMOUS)
    with pytest.raises(ProofError, match="bad signature"):
        _verifier(member).verify(method, path, query, hop.proof, hop.identity)


def test_a_swapped_identity_is_refused() -> None:
    hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS)
    admin = sign(KEY, "GET", "/v2/other/tags/list", b"", "m:1", Identity(user="admin"))
    with pytest.raises(ProofError, match="bad signature"):
        _verifier("m:1").verify("GET", "/v2/a/tags/list", b"", hop.proof, admin.identity)


def test_a_replayed_proof_is_refused() -> None:
    verifier = _verifier("m:1")
    hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS)
    verifier.verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity)
    with pytest.raises(ProofError, match="replayed"):
        verifier.verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity)


@pytest.mark.parametrize("age", [-60.0, 60.0])
def test_a_stale_or_future_proof_is_refused(age: float) -> None:
    hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS, now=time.time() - age)
    with pytest.raises(ProofError, match="stale"):
        _verifier("m:1").verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity)


@pytest.mark.parametrize("sent_at", [float("nan"), float("inf"), float("-inf")])
def test_a_signed_time_that_is_not_a_time_is_refused(tmp_path: Path, sent_at: float) -> None:
    """Signed with the key, so only a member could send it; "nan" passed the age check (no
    comparison with it is true) and then failed the shared replay window with a 500."""
    hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS, now=sent_at)
    with pytest.raises(ProofError):
        ProofVerifier(KEY, "m:1", tmp_path).verify(
            "GET", "/v2/a/tags/list", b"", hop.proof, hop.identity
        )


def test_another_key_does_not_verify() -> None:
    hop = sign(derive_key(b"0123456789abcdef"), "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS)
    with pytest.raises(ProofError, match="bad signature"):
        _verifier("m:1").verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity)


@pytest.mark.parametrize(
    "proof", [None, b"", b"garbage", b"v1:notatime:n:m", b"v9:1:n:m", b"\xff\xfe:1:2:3"]
)
def test_malformed_proofs_are_refused_not_crashing(proof: bytes | None) -> None:
    with pytest.raises(ProofError):
        _verifier("m:1").verify("GET", "/v2/a/tags/list", b"", proof, b"e30=")


def test_workers_sharing_a_replay_dir_accept_a_proof_once(tmp_path: Path) -> None:
    """Two verifiers over one directory, as the worker processes of one member."""
    first, second = (ProofVerifier(KEY, "m:1", tmp_path) for _ in range(2))
    hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS)
    first.verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity)
    with pytest.raises(ProofError, match="replayed"):
        second.verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity)
    other = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS)
    assert second.verify("GET", "/v2/a/tags/list", b"", other.proof, other.identity) == ANONYMOUS


def test_windows_no_proof_can_fall_in_are_removed(tmp_path: Path) -> None:
    verifier = ProofVerifier(KEY, "m:1", tmp_path)
    start = 1_000_000.0
    for offset in (0.0, VALIDITY_SECONDS * 4):
        now = start + offset
        hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS, now=now)
        verifier.verify("GET", "/v2/a/tags/list", b"", hop.proof, hop.identity, now=now)
    latest = str(int((start + VALIDITY_SECONDS * 4) // VALIDITY_SECONDS))
    wait_until(lambda: [p.name for p in tmp_path.iterdir()] == [latest], timeout=10)


def test_an_unwritable_replay_dir_refuses_rather_than_risk_a_replay(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    hop = sign(KEY, "GET", "/v2/a/tags/list", b"", "m:1", ANONYMOUS)
    with pytest.raises(ProofError, match="replay cache"):
        ProofVerifier(KEY, "m:1", blocker).verify(
            "GET", "/v2/a/tags/list", b"", hop.proof, hop.identity
        )
