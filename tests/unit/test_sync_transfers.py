"""A blob being copied, followed by a reader: the pieces kept in memory, the file read back
for a reader further behind, and the last byte held until the copy has ended."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ocireg.digest import Digest
from ocireg.sync import transfers
from ocireg.sync.transfers import Transfer, Transfers, open_follower

DIGEST = Digest.of(b"x")


def test_recent_pieces_are_kept_up_to_the_ring_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfers, "RING", 10)
    t = Transfer(DIGEST)
    t.started("/nonexistent", 12)
    for piece in (b"aaaa", b"bbbb", b"cccc"):
        t.arrived(piece)
    assert t.received == 12
    assert t.recent_at(0, 100) is None  # dropped: 12 bytes > RING
    assert t.recent_at(4, 4) == b"bbbb"  # a whole piece
    assert t.recent_at(4, 100) == b"bbbbcccc"
    assert t.recent_at(6, 100) == b"bbcccc"  # joined up to the limit
    assert t.recent_at(6, 3) == b"bbc"
    assert t.recent_at(8, 3) == b"ccc"
    assert t.recent_at(12, 100) is None  # not received yet
    big = Transfer(DIGEST)
    big.started("/nonexistent", 50)
    big.arrived(b"z" * 50)  # a piece larger than the ring stays (the latest one always does)
    assert big.recent_at(0, 100) == b"z" * 50
    unfollowable = Transfer(DIGEST)
    unfollowable.started(None, 50)  # S3: no file to follow, so no piece is kept
    unfollowable.arrived(b"z" * 50)
    assert unfollowable.received == 50 and not unfollowable.recent


async def _follow_copy(tmp_path: Path, fail: bool) -> tuple[bytes, BaseException | None]:
    """A copy writing 8 pieces of 1,000 bytes to a file (slower than it receives them) and
    a follower reading along; what the follower got and how it ended."""
    path = tmp_path / "session"
    path.write_bytes(b"")
    pieces = [bytes([65 + i]) * 1000 for i in range(8)]
    release = asyncio.Event()

    async def copy(transfer: Transfer) -> None:
        transfer.started(str(path), 8000)
        with path.open("ab") as f:
            for piece in pieces:
                transfer.arrived(piece)
                await asyncio.sleep(0)
                f.write(piece)
                f.flush()
        await release.wait()  # the digest check
        if fail:
            raise OSError("digest mismatch")

    transfer = Transfers().start("repo", DIGEST, copy)
    await transfer.ready.wait()
    follower = await open_follower(transfer)
    assert follower is not None
    got = bytearray()
    error: BaseException | None = None
    try:
        async for piece in follower:
            got += piece
            if len(got) == 7999:
                # Everything but the last byte, while the check has not passed.
                await asyncio.sleep(0.1)
                assert len(got) == 7999
                release.set()
    except OSError as exc:
        error = exc
    if not release.is_set():
        release.set()
    await asyncio.gather(transfer.task, return_exceptions=True)  # type: ignore[arg-type]
    return bytes(got), error


@pytest.mark.parametrize("ring", [1 << 20, 1500])
def test_a_follower_gets_every_byte_and_the_last_one_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ring: int
) -> None:
    # A small ring: the follower falls behind what is kept and reads the file instead.
    monkeypatch.setattr(transfers, "RING", ring)
    reads: list[int] = []
    pread = os.pread

    def counted(fd: int, n: int, offset: int) -> bytes:
        reads.append(offset)
        return pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counted)
    got, error = asyncio.run(_follow_copy(tmp_path, fail=False))
    assert error is None
    assert got == b"".join(bytes([65 + i]) * 1000 for i in range(8))
    assert (reads == []) == (ring > 8000)  # from memory only when everything was kept


def test_a_failed_copy_is_raised_before_the_last_byte(tmp_path: Path) -> None:
    got, error = asyncio.run(_follow_copy(tmp_path, fail=True))
    assert isinstance(error, OSError) and "digest mismatch" in str(error)
    assert len(got) == 7999
    assert os.path.exists(tmp_path / "session")


async def _follow_elsewhere(
    session: Path, final: Path, content: bytes, live: bool
) -> tuple[bytes, str]:
    """A follower of a copy made by another process into `session`, the blob stored at
    `final` once that copy ends: the end comes while the follower waits for the last byte
    (`live`), or came before it read anything (it is behind). What it got, and its error."""
    ended = asyncio.Event()
    transfer = Transfer(Digest.of(content))
    transfer.task = asyncio.ensure_future(ended.wait())
    if not live:
        ended.set()
        await transfer.task
    transfer.started_elsewhere(str(session), len(content), str(final))
    follower = await open_follower(transfer)
    assert follower is not None
    got = bytearray()
    try:
        async for piece in follower:
            got += piece
            if len(got) == len(content) - 1:
                ended.set()
    except OSError as exc:
        return bytes(got), str(exc)
    finally:
        ended.set()
    return bytes(got), ""


CONTENT = os.urandom(3 << 20)


@pytest.mark.parametrize("live", [True, False])
def test_a_copy_elsewhere_is_followed_whole_when_its_file_is_stored(
    tmp_path: Path, live: bool
) -> None:
    session, final = tmp_path / "session", tmp_path / "blob"
    session.write_bytes(CONTENT)
    os.link(session, final)  # the copy renamed its session's file into place
    assert asyncio.run(_follow_elsewhere(session, final, CONTENT, live)) == (CONTENT, "")


@pytest.mark.parametrize("live", [True, False])
def test_a_copy_elsewhere_deduplicated_is_followed_whole(tmp_path: Path, live: bool) -> None:
    """Dedupe made the stored blob a link to another repository's copy: another inode
    than the file followed, the same bytes."""
    session, final = tmp_path / "session", tmp_path / "blob"
    session.write_bytes(CONTENT)
    final.write_bytes(CONTENT)
    assert asyncio.run(_follow_elsewhere(session, final, CONTENT, live)) == (CONTENT, "")


@pytest.mark.parametrize("live", [True, False])
def test_other_bytes_followed_are_cut_before_the_last_byte(tmp_path: Path, live: bool) -> None:
    """The copy followed failed its check and another stored the blob: the bytes followed
    are not the blob's, and the last byte is not sent, also by a follower behind the copy's
    end."""
    session, final = tmp_path / "session", tmp_path / "blob"
    session.write_bytes(CONTENT[:-1] + bytes([CONTENT[-1] ^ 1]))
    final.write_bytes(CONTENT)
    got, error = asyncio.run(_follow_elsewhere(session, final, CONTENT, live))
    assert len(got) < len(CONTENT) and "not the file followed" in error
    final.unlink()
    got, error = asyncio.run(_follow_elsewhere(session, final, CONTENT, live))
    assert len(got) < len(CONTENT) and "not stored" in error
