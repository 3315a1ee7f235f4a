"""Writes to a repository's index.json, coalesced (group commit), across worker processes.

Each write of index.json rewrites the whole file, and on a busy repository the file write is
most of a tag write's cost (docs/performance.md, "Tag writes"). Writers of one repository in
one process therefore queue their change; one task per repository takes the repository lock
and applies everything queued so far in one conditional write, then answers each writer.
A writer's answer comes only after the write that contains its change: an acknowledged tag
is stored. The task runs apart from the requests, so a client that goes away cannot leave
the others waiting.

Across the worker processes of an instance the same holds: a worker that finds the lock
taken hands its queued tag writes to the holder (registry/handoff.py; the holder's address
is noted in the lock file), whose next write includes them, and answers its clients when
the holder says they are written, after the rename. Without this the workers take turns on
the lock and each write holds the tags of one worker only, after first replaying the other's
last write. Only changes that can be applied twice with the same result are handed over
(a tag set, an untagged manifest added: `portable`), each with what the holder needs to make
the same checks under its lock (the manifest). Anything the holder declines, or does not
answer for because it died or was stopped (every wait on it is bounded: registry/handoff.py),
is written by its own worker, as before, under the lock: a client's 201 always follows the
rename that holds its tag, whichever worker made it.

Each write also waits, for at most GATHER times the previous write's duration (and WAIT_MAX),
for the tag writes on their way to it: those answered by the previous write, whose clients
likely send their next tag at once, and the manifest puts in progress here (counted from the
start of `put_manifest`) and, as they last said, in the other workers. On a large index a
write costs milliseconds of CPU and disk whatever it holds (2 MB at 10,000 tags), so one
write of eight tags is far cheaper than four of two. A lone client does not wait: its next
tag is the only one expected, and the write starts when it comes. While the lock is held and
nothing is queued, the holder waits as long for the next tags before letting the lock go, so
that one worker keeps writing for all of them.

While it gathers, the holder already writes the next index.json up to its last entry, from
the index as it is (`IndexCache.draft`, storage's `draft`): new tags are added at the end of
the file, so all that is left once the tags are in is their entries and the rename, and the
clients no longer wait while most of the 2 MB each write makes at 10,000 tags is written. A
write that also removes or replaces an entry (a tag moved) is written whole, as before. The
gathering still lasts as long as a whole write would (`took` counts the beginning too): it
is what keeps the tags per write, and so the CPU per tag, where they were.

Handing over, gathering and lingering are for a large index only (LARGE entries or more, as
cached here): on a small one a write costs less than they do, and the workers take turns on
the lock as before.

A holder takes others' writes for at most TENURE writes in a row, then lets the lock go and
waits BREATHER before taking it again: a worker waiting for the lock for a change that cannot
be handed over (a delete), or a garbage collection, gets its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ocireg.registry.handoff import Handoff
from ocireg.registry.index import Batch, IndexCache, IndexChange, IndexDraft
from ocireg.registry.locks import LocalLocks, LockBusy, repo_key

log = logging.getLogger("ocireg.registry")

# Run under the lock before a change is applied. Its argument is shared by the jobs of one
# write: the blobs they found stored (digests), which stay stored while the lock is held
# (garbage collection takes it), so that one write of many tags of an image asks the storage
# once per blob; and what else they do once per write (the store's notes, not digests).
Prepare = Callable[[set[str]], Awaitable[None]]
# Rebuilds a handed-over write from its `portable` form: the change and its checks.
Adopt = Callable[[str, dict[str, Any]], tuple[IndexChange, Prepare]]

LARGE = 1000  # index entries (~200 KB of index.json) from which writes are shared
TENURE = 32
BREATHER = 0.002  # seconds
GATHER = 1.0
WAIT_MAX = 0.01  # seconds: the longest a holder gathers or lingers, however slow a write
HAND_OVERS = 2  # times one write may be handed over before its worker takes the lock


@dataclass
class _Job:
    change: IndexChange
    prepare: Prepare | None  # run under the lock first; if it raises, the change is dropped
    future: asyncio.Future[Any]
    portable: dict[str, Any] | None = None  # for `Adopt` in another worker; result None
    hand_overs: int = 0

    def movable(self) -> bool:
        return self.portable is not None and self.hand_overs < HAND_OVERS


class IndexWriter:
    def __init__(self, indexes: IndexCache, locks: LocalLocks) -> None:
        self.indexes = indexes
        self.locks = locks
        self.adopt: Adopt | None = None  # set by the store; without it nothing is taken
        self.handoff = Handoff(locks.directory, self._accept)
        self._queues: dict[str, list[_Job]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._accepting: set[str] = set()  # repositories whose lock we hold and share
        self._breathe: set[str] = set()  # repositories whose lock we gave up after a tenure
        self._arrived: dict[str, asyncio.Event] = {}  # set when something is queued or said
        self._sending: set[asyncio.Task[None]] = set()  # hand-overs, discarded drafts
        self._coming: dict[str, int] = {}  # manifest puts on their way here (`coming`)
        self._returning: dict[str, int] = {}  # answered by the last write, not back yet
        # What the other workers said of theirs: repository -> peer -> (count, when).
        self._said: dict[str, dict[int, tuple[int, float]]] = {}

    @contextlib.contextmanager
    def coming(self, repo: str) -> Iterator[Callable[[], None]]:
        """Count a write to `repo` as on its way until it is queued (the function yielded,
        passed to `write`) or given up: the write in progress may wait for it."""
        self._coming[repo] = self._coming.get(repo, 0) + 1
        counted = True

        def arrived() -> None:
            nonlocal counted
            if counted:
                counted = False
                if left := self._coming[repo] - 1:
                    self._coming[repo] = left
                else:
                    del self._coming[repo]
                self._signal(repo)

        try:
            yield arrived
        finally:
            arrived()

    async def write(
        self,
        repo: str,
        change: IndexChange,
        prepare: Prepare | None = None,
        portable: dict[str, Any] | None = None,
        arrived: Callable[[], None] | None = None,
    ) -> Any:
        """Apply `change` to `repo`'s index (after `prepare`, under the repository lock);
        its result once the write that holds it is done. `portable`: the change may be
        written by the worker holding the lock, rebuilt from this by its `adopt`; only for
        changes whose result is None and that are the same when applied twice. `arrived`:
        from `coming`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue(repo, [_Job(change, prepare, future, portable)])
        if arrived is not None:
            arrived()
        return await asyncio.shield(future)

    def _arrive(self, repo: str, count: int) -> None:
        if (returning := self._returning.get(repo)) is not None:
            self._returning[repo] = max(0, returning - count)
        self._signal(repo)

    def _signal(self, repo: str) -> None:
        if (event := self._arrived.get(repo)) is not None:
            event.set()

    def _queue(self, repo: str, jobs: list[_Job]) -> None:
        self._queues.setdefault(repo, []).extend(jobs)
        self._arrive(repo, len(jobs))
        if repo not in self._flushers:
            self._flushers[repo] = asyncio.create_task(self._flush(repo))

    async def _flush(self, repo: str) -> None:
        try:
            while self._queues.get(repo):
                if repo in self._breathe:
                    self._breathe.discard(repo)
                    await asyncio.sleep(BREATHER)
                own = await self._shared_as(repo)
                async with contextlib.AsyncExitStack() as held:
                    try:
                        await held.enter_async_context(self.locks.repo(repo, False, own))
                    except LockBusy:
                        if self._hand_over(repo, own):
                            continue
                        await held.enter_async_context(self.locks.repo(repo, True, own))
                    await self._hold(repo, own)
        finally:
            del self._flushers[repo]
            if self._queues.get(repo):  # queued while this task was finishing
                self._flushers[repo] = asyncio.create_task(self._flush(repo))

    async def _shared_as(self, repo: str) -> bytes:
        """Where we take other workers' writes to `repo` (empty: we do not share it). Only
        for a large index: on a small one a write costs less than handing tags over and
        gathering them, and the workers simply take turns."""
        if self.adopt is None or self.indexes.entries(repo) < LARGE:
            return b""
        return await self.handoff.address()

    async def _hold(self, repo: str, own: bytes) -> None:
        """Write what is queued, ours and (while `own`) what other workers hand over, until
        nothing is."""
        if own:
            self._accepting.add(repo)
        writes, lingered, took, started = 0, False, 0.0, 0.0
        try:
            while True:
                draft, drafting = None, 0.0
                if own and took and self._queues.get(repo) and self._expected(repo, started):
                    # Puts on their way: wait for them, briefly (see the module's text),
                    # while most of the next index.json is written.
                    wait = min(took * GATHER, WAIT_MAX)
                    draft, drafting = await self._drafted(
                        repo, self._wait(repo, wait, self._all_came(repo, started))
                    )
                jobs = self._queues.pop(repo, None)
                if not jobs and draft is not None:
                    await draft.file.discard()
                if jobs:
                    started = time.monotonic()
                    # The clients answered now likely send their next tags soon.
                    self._returning[repo] = await self._write(repo, jobs, draft)
                    # What the write cost, the part begun while gathering included.
                    took, lingered = time.monotonic() - started + drafting, False
                    writes += 1
                    if writes == TENURE and repo in self._accepting:
                        self._accepting.discard(repo)  # from now on others take the lock
                        self._breathe.add(repo)
                    continue
                if lingered or repo not in self._accepting:
                    break
                lingered = True  # once: the other workers' next tags, if they come soon
                await self._wait(repo, min(took, WAIT_MAX), lambda: repo in self._queues)
        finally:
            # In the same step as the empty queue was seen: nothing taken is left unwritten.
            self._accepting.discard(repo)
            self._said.pop(repo, None)
            self._returning.pop(repo, None)

    async def _drafted(
        self, repo: str, waiting: Awaitable[None]
    ) -> tuple[IndexDraft | None, float]:
        """The next write of `repo`'s index begun (`IndexCache.draft`) while `waiting`,
        and how long that took."""
        drafting = asyncio.create_task(_timed(self.indexes.draft(repo)))
        try:
            await waiting
        except BaseException:  # cancelled: the temporary file is not left behind
            drafting.add_done_callback(self._discard)
            raise
        return await drafting

    def _discard(self, drafting: asyncio.Task[tuple[IndexDraft | None, float]]) -> None:
        if drafting.cancelled() or drafting.exception() is not None:
            return
        if (draft := drafting.result()[0]) is not None:
            task = asyncio.create_task(draft.file.discard())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _expected(self, repo: str, since: float) -> int:
        """Puts to `repo` on their way: ours, and what the others said since `since`."""
        said = self._said.get(repo, {}).values()
        return (
            self._returning.get(repo, 0)
            + self._coming.get(repo, 0)
            + sum(n for n, when in said if when >= since)
        )

    def _all_came(self, repo: str, since: float) -> Callable[[], bool]:
        return lambda: not self._expected(repo, since)

    async def _wait(self, repo: str, seconds: float, done: Callable[[], bool]) -> None:
        """Until `done()`, rechecked whenever something is queued or said, or `seconds`."""
        deadline = time.monotonic() + seconds
        while not done() and (left := deadline - time.monotonic()) > 0:
            event = self._arrived[repo] = asyncio.Event()
            try:
                async with asyncio.timeout(left):
                    await event.wait()
            except TimeoutError:
                return
            finally:
                del self._arrived[repo]

    def _hand_over(self, repo: str, own: bytes) -> bool:
        """Hand the queued writes that may be to the lock's holder; False if some are left
        that need the lock."""
        jobs = self._queues.get(repo) or []
        if not own or not any(job.movable() for job in jobs):
            return False
        holder = self.locks.note_of(repo_key(repo))
        if not holder or holder == own:
            return False
        del self._queues[repo]
        movable = [job for job in jobs if job.movable()]
        rest = [job for job in jobs if not job.movable()]
        for job in movable:
            job.hand_overs += 1
        task = asyncio.create_task(self._send(repo, holder, movable))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        if rest:
            self._queues[repo] = rest
        return not rest

    async def _send(self, repo: str, holder: bytes, jobs: list[_Job]) -> None:
        items = [job.portable for job in jobs if job.portable is not None]
        try:
            written = await self.handoff.hand(holder, repo, items, self._coming.get(repo, 0))
        except Exception as exc:  # the holder died, or did not answer: we write them (again)
            log.warning(
                "handed-over index writes not answered",
                extra={"repo": repo, "writes": len(jobs), "pid": os.getpid(), "error": str(exc)},
            )
            written = [False] * len(jobs)
            for job in jobs:  # not handed over again: a stopped holder keeps the lock
                job.hand_overs = HAND_OVERS  # and would not answer; wait for the lock
        back = []
        for job, done in zip(jobs, written, strict=True):
            if not done:
                back.append(job)
            elif not job.future.done():
                job.future.set_result(None)
        if back:  # declined, or the holder died: ours to write (again: the same result)
            self._queue(repo, back)

    async def _accept(
        self, repo: str, items: list[dict[str, Any]], coming: int, peer: int
    ) -> list[bool]:
        """Another worker's (`peer`'s) writes to `repo`: queued for our next write while we
        hold its lock (and declined otherwise); which of them were written. `coming`: how
        many more it has on their way."""
        if repo not in self._accepting or self.adopt is None:
            return [False] * len(items)
        self._said.setdefault(repo, {})[peer] = (coming, time.monotonic())
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any] | None] = []
        jobs = []
        for item in items:
            try:
                change, prepare = self.adopt(repo, item)
            except Exception:  # its own worker will find out why, and say so
                futures.append(None)
                continue
            jobs.append(_Job(change, prepare, loop.create_future()))
            futures.append(jobs[-1].future)
        # While we accept, our holding loop has not yet seen an empty queue: it takes these.
        self._queues.setdefault(repo, []).extend(jobs)
        self._arrive(repo, len(jobs))
        return [future is not None and await _succeeded(future) for future in futures]

    async def _write(self, repo: str, jobs: list[_Job], draft: IndexDraft | None = None) -> int:
        """Write `jobs` (with `draft`, begun for them, and discarded if not used); how many
        were written."""
        try:
            return await self._write_jobs(repo, jobs, draft)
        finally:
            if draft is not None:
                await draft.file.discard()

    async def _write_jobs(self, repo: str, jobs: list[_Job], draft: IndexDraft | None) -> int:
        ready: list[_Job] = []
        stored: set[str] = set()
        for job in jobs:
            try:
                if job.prepare is not None:
                    await job.prepare(stored)
            except Exception as exc:
                job.future.set_exception(exc)
            else:
                ready.append(job)
        if not ready:
            return 0
        try:
            results = await self.indexes.update(repo, Batch([job.change for job in ready]), draft)
        except Exception as exc:
            for job in ready:
                job.future.set_exception(exc)
            return 0
        for job, result in zip(ready, results, strict=True):
            job.future.set_result(result)
        return len(ready)

    async def close(self) -> None:
        await self.handoff.close()


async def _timed(draft: Awaitable[IndexDraft | None]) -> tuple[IndexDraft | None, float]:
    """`draft`'s result, and how long it took."""
    started = time.monotonic()
    return await draft, time.monotonic() - started


async def _succeeded(future: asyncio.Future[Any]) -> bool:
    try:
        await future
    except Exception:
        return False
    return True
