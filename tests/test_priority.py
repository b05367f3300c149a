"""Strict priority between the queues, FIFO within each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tasker_aio import TaskManager

from .helpers import Resource, use

Make = Callable[..., TaskManager[Any, Any]]


def record(order: list[str], name: str) -> Callable[[Resource], Any]:
    async def task(resource: Resource) -> str:
        order.append(name)
        return name

    return task


async def test_priority_first_fifo_within(make_manager: Make) -> None:
    """With one busy worker, every priority task runs before any main task, each FIFO."""
    order: list[str] = []
    gate = asyncio.Event()
    async with make_manager(worker_count=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        assert manager.stats().running_tasks == 1
        futures = []
        for i in range(3):
            futures.append(manager.submit(record(order, f"m{i}")))
            futures.append(manager.submit(record(order, f"p{i}"), priority=True))
        assert manager.stats().queued_tasks == 3
        assert manager.stats().priority_tasks == 3
        gate.set()
        await asyncio.gather(blocker, *futures)
    assert order == ["p0", "p1", "p2", "m0", "m1", "m2"]


async def test_priority_arriving_later_still_goes_first(make_manager: Make) -> None:
    """A priority task queued after main tasks runs at the worker's next pick."""
    order: list[str] = []
    gates = [asyncio.Event() for _ in range(2)]

    async def step(resource: Resource, name: str, gate: asyncio.Event | None) -> None:
        order.append(name)
        if gate is not None:
            await gate.wait()

    async with make_manager(worker_count=1) as manager:
        m0 = manager.submit(lambda r: step(r, "m0", gates[0]))
        m1 = manager.submit(lambda r: step(r, "m1", gates[1]))
        m2 = manager.submit(lambda r: step(r, "m2", None))
        gates[0].set()
        while order != ["m0", "m1"]:
            await asyncio.sleep(0)
        urgent = manager.submit(lambda r: step(r, "p", None), priority=True)
        gates[1].set()
        await asyncio.gather(m0, m1, m2, urgent)
    assert order == ["m0", "m1", "p", "m2"]


async def test_many_workers_still_strict(make_manager: Make) -> None:
    """With several workers and a full backlog, no main task starts before the priority ones."""
    order: list[str] = []
    gate = asyncio.Event()
    async with make_manager(worker_count=3) as manager:
        blockers = [manager.submit(use(gate=gate)) for _ in range(3)]
        await asyncio.sleep(0)
        mains = [manager.submit(record(order, f"m{i}")) for i in range(10)]
        prios = [manager.submit(record(order, f"p{i}"), priority=True) for i in range(10)]
        gate.set()
        await asyncio.gather(*blockers, *mains, *prios)
    assert order[:10] == [f"p{i}" for i in range(10)]
    assert order[10:] == [f"m{i}" for i in range(10)]
