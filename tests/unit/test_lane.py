"""`ocireg.lane.Lane`: ordered jobs on a thread of their own, bounded, failures raised once
the caller next waits. Real threads and a real event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ocireg.lane import Lane


def test_jobs_run_in_order_on_one_thread_other_than_the_loop() -> None:
    seen: list[tuple[int, int]] = []

    async def main() -> None:
        lane = Lane("test", depth=3)
        for i in range(50):
            await lane.submit(lambda i=i: seen.append((i, threading.get_ident())))
        await lane.drain()
        lane.close()

    asyncio.run(main())
    assert [i for i, _ in seen] == list(range(50))
    threads = {t for _, t in seen}
    assert len(threads) == 1
    assert threads != {threading.get_ident()}


def test_submit_waits_while_depth_jobs_are_outstanding() -> None:
    release = threading.Event()
    started = threading.Event()

    async def main() -> None:
        lane = Lane("test", depth=2)
        await lane.submit(lambda: (started.set(), release.wait(10)))
        await lane.submit(lambda: None)
        third = asyncio.ensure_future(lane.submit(lambda: None))
        assert await asyncio.to_thread(started.wait, 10)
        await asyncio.sleep(0)  # give the third submit every chance to get through
        assert not third.done()  # two outstanding: it waits
        release.set()
        await asyncio.wait_for(third, 10)
        await lane.drain()
        lane.close()

    asyncio.run(main())


def test_a_failure_skips_later_jobs_and_is_raised() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise OSError(28, "No space left on device")

    async def main() -> None:
        lane = Lane("test", depth=8)
        await lane.submit(lambda: ran.append(1))
        await lane.submit(fail)
        await lane.submit(lambda: ran.append(3))  # queued before the failure is known
        with pytest.raises(OSError, match="No space"):
            await lane.drain()
        with pytest.raises(OSError, match="No space"):
            await lane.submit(lambda: ran.append(4))
        lane.close()

    asyncio.run(main())
    assert ran == [1]


def test_close_runs_last_after_the_queued_jobs_without_waiting() -> None:
    order: list[str] = []
    release = threading.Event()
    closed = threading.Event()

    async def main() -> None:
        lane = Lane("test", depth=4)
        await lane.submit(lambda: (release.wait(10), order.append("job")))
        lane.close(last=lambda: (order.append("last"), closed.set()))
        assert order == []  # close did not wait for the job
        release.set()
        assert await asyncio.to_thread(closed.wait, 10)

    asyncio.run(main())
    assert order == ["job", "last"]
