"""ocireg.ordered: several works at once, results in the items' order (runs over every
repository rely on it for their checkpoints)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ocireg.ordered import ordered


class Works:
    """Works that finish when told to (the later items sooner), noting how many run at
    once."""

    def __init__(self) -> None:
        self.release: dict[int, asyncio.Event] = {}
        self.running = 0
        self.most = 0
        self.cancelled: list[int] = []

    async def __call__(self, item: int) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            for _ in range(20 - item):  # the later items finish first
                await asyncio.sleep(0)
            await self.release.setdefault(item, asyncio.Event()).wait()
            if item < 0:
                raise ValueError(item)
            return f"r{item}"
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise
        finally:
            self.running -= 1

    def finish(self, *items: int) -> None:
        for item in items:
            self.release.setdefault(item, asyncio.Event()).set()


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def test_results_come_in_order_with_a_bounded_number_running() -> None:
    async def main() -> None:
        works = Works()
        works.finish(*range(10))
        got = [pair async for pair in ordered(_count(10), works, 3)]
        assert got == [(i, f"r{i}") for i in range(10)]
        assert works.most == 3

    asyncio.run(main())


def test_one_at_a_time_is_sequential() -> None:
    async def main() -> None:
        works = Works()
        works.finish(*range(5))
        assert [r async for _, r in ordered(range(5), works, 1)] == [f"r{i}" for i in range(5)]
        assert works.most == 1

    asyncio.run(main())


def test_a_failure_comes_after_the_results_before_it() -> None:
    async def main() -> None:
        works = Works()
        works.finish(0, 1, -1, 3)
        got: list[str] = []
        with pytest.raises(ValueError):
            async for _, result in ordered([0, 1, -1, 3], works, 4):
                got.append(result)
        assert got == ["r0", "r1"]

    asyncio.run(main())


def test_leaving_early_cancels_the_works_still_running() -> None:
    async def main() -> None:
        works = Works()
        works.finish(0)
        results = ordered(range(10), works, 4)
        assert await anext(results) == (0, "r0")
        await results.aclose()
        assert sorted(works.cancelled) == [1, 2, 3]  # 4 had not started
        assert works.running == 0

    asyncio.run(main())
