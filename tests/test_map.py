"""map(): ordered and unordered streams, bounded in flight, errors, early exit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tasker_aio import TaskManager

from .helpers import Resource, settle

Make = Callable[..., TaskManager[Any, Any]]


async def double(resource: Resource, item: int) -> int:
    resource.acquire()
    try:
        await asyncio.sleep(0)
        return item * 2
    finally:
        resource.release()


async def test_ordered_results(make_manager: Make) -> None:
    """ordered=True yields results in input order."""
    async with make_manager(worker_count=3) as manager:
        results = [r async for r in manager.map(double, range(20))]
    assert results == [i * 2 for i in range(20)]


async def test_completion_order(make_manager: Make) -> None:
    """ordered=False yields results as they complete."""
    gates = {i: asyncio.Event() for i in range(3)}

    async def gated(resource: Resource, item: int) -> int:
        await gates[item].wait()
        return item

    async with make_manager(worker_count=3) as manager:
        stream = manager.map(gated, range(3), ordered=False)
        first = asyncio.ensure_future(anext(stream))
        await settle()
        gates[2].set()
        assert await first == 2
        gates[0].set()
        assert await anext(stream) == 0
        gates[1].set()
        assert await anext(stream) == 1
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_async_source(make_manager: Make) -> None:
    """items may be an async iterable."""

    async def source() -> AsyncIterator[int]:
        for i in range(10):
            await asyncio.sleep(0)
            yield i

    async with make_manager() as manager:
        assert [r async for r in manager.map(double, source())] == [i * 2 for i in range(10)]


async def test_endless_source_bounded_in_flight(make_manager: Make) -> None:
    """An endless generator is pulled lazily: never more than max_in_flight submitted."""
    pulled = 0
    peak = 0

    def endless() -> Any:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    async with make_manager(worker_count=2) as manager:

        async def watch(resource: Resource, item: int) -> int:
            nonlocal peak
            stats = manager.stats()
            peak = max(peak, stats.queued_tasks + stats.running_tasks)
            await asyncio.sleep(0)
            return item

        seen = 0
        async for value in manager.map(watch, endless(), max_in_flight=5):
            assert value == seen
            seen += 1
            assert pulled <= seen + 5
            if seen == 200:
                break
        await settle()
        assert manager.stats().queued_tasks == 0
    assert peak <= 5


async def test_default_max_in_flight(make_manager: Make) -> None:
    """By default at most 2 * max_worker_count tasks are in flight."""
    pulled = 0

    def items() -> Any:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield i

    async with make_manager(worker_count=2, max_worker_count=3) as manager:
        stream = manager.map(double, items())
        assert await anext(stream) == 0
        assert pulled == 6
        await stream.aclose()


async def test_error_raised_at_its_position(make_manager: Make) -> None:
    """The first task error is raised where its result would have been."""

    async def fragile(resource: Resource, item: int) -> int:
        if item == 3:
            raise ValueError("three")
        return item

    got: list[int] = []
    async with make_manager() as manager:
        with pytest.raises(ValueError, match="three"):
            async for value in manager.map(fragile, range(10)):
                got.append(value)
        await settle()
        assert manager.stats().queued_tasks == 0
    assert got == [0, 1, 2]


async def test_break_cancels_in_flight(make_manager: Make) -> None:
    """Leaving the loop early discards queued tasks and cancels running ones at once."""
    started: list[int] = []
    cancelled: list[int] = []
    finish_first = asyncio.Event()

    async def slow(resource: Resource, item: int) -> int:
        started.append(item)
        if item == 0:
            await finish_first.wait()
            return 0
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return item

    async with make_manager(worker_count=2) as manager:
        finish_first.set()
        async for value in manager.map(slow, range(10), max_in_flight=6):
            assert value == 0
            break
        assert manager.stats().queued_tasks == 0
        await settle()
        assert manager.stats().running_tasks == 0
    assert sorted(cancelled) == sorted(started[1:])
    assert len(started) <= 3  # two workers: item 0, then at most two blocked items


async def test_bad_arguments(make_manager: Make) -> None:
    """map() rejects a bad fn, items or max_in_flight at once, naming the value."""
    async with make_manager() as manager:
        with pytest.raises(TypeError, match="fn must be callable"):
            manager.map(3, [1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="items must be an iterable"):
            manager.map(double, 5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_in_flight must be an int >= 1, got 0"):
            manager.map(double, [1], max_in_flight=0)


async def test_priority_map(make_manager: Make) -> None:
    """priority=True feeds the priority queue."""
    async with make_manager() as manager:
        assert [r async for r in manager.map(double, [1, 2], priority=True)] == [2, 4]
