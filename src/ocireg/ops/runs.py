"""Runs over every repository (gc, scrub): one repository (or a few, `at_once`) at a time,
so memory does not grow with their number; progress in the log; and a checkpoint, so that a
run that was stopped (a restart, a SIGKILL, Ctrl-C) resumes after the last repository it
finished instead of starting over. Both jobs are idempotent, so what a checkpoint misses is
only done twice."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ocireg.logs import Progress
from ocireg.ordered import ordered
from ocireg.registry import ImageStore
from ocireg.registry.layout import PRIVATE_DIR

R = TypeVar("R")
SAVE_EVERY = 1.0  # seconds between checkpoint writes: at most this much work is redone


def owns_everything(repo: str) -> bool:
    return True


class Checkpoint:
    """The last repository a run finished, in a small file of the instance's local state."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, root: Path, job: str, member: str = "") -> Checkpoint:
        """The checkpoint of `job` under a local root; cluster members sharing one root each
        keep their own (each runs over the repositories it maintains)."""
        suffix = f"-{hashlib.sha256(member.encode()).hexdigest()[:12]}" if member else ""
        return cls(root / PRIVATE_DIR / "runs" / f"{job}{suffix}")

    def load(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def save(self, repository: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(repository)
        os.replace(partial, self.path)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def each_repository(
    store: ImageStore,
    job: str,
    visit: Callable[[str], Awaitable[R]],
    owns: Callable[[str], bool] = owns_everything,
    checkpoint: Checkpoint | None = None,
    logger: logging.Logger | None = None,
    save_every: float = SAVE_EVERY,
    at_once: int = 1,
) -> AsyncIterator[R]:
    """`visit(repo)` for every repository `owns` accepts, in walk order, yielded as each
    finishes; from after the checkpoint's repository when there is one, which is cleared
    once the run reaches the end. Up to `at_once` visits run together (on remote storage,
    where each is many round trips); the checkpoint still names a repository before which
    every one is done."""
    log = logger or logging.getLogger(f"ocireg.{job}")
    after = checkpoint.load() if checkpoint is not None else ""
    if after:
        log.info(f"{job} resumes after an interrupted run", extra={"after": after})
    progress = Progress(log, job)
    saved = time.monotonic()
    owned = (repo async for repo in store.repositories(after) if owns(repo))
    async for repo, result in ordered(owned, visit, at_once):
        yield result
        progress.step(repo)
        if checkpoint is not None and time.monotonic() - saved >= save_every:
            checkpoint.save(repo)
            saved = time.monotonic()
    if checkpoint is not None:
        checkpoint.clear()
    progress.finish()
