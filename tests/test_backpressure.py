"""max_queue_size: waiting for room, QueueFullError, re-runs beyond the bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import QueueFullError, TaskManager

from .helpers import Resource, settle, use

Make = Callable[..., TaskManager[Any, Any]]


async def test_non_blocking_forms_fail_when_full(make_manager: Make) -> None:
    """A full queue fails non-blocking submissions with QueueFullError via the future."""
    gate = asyncio.Event()
    got: list[BaseException | None] = []
    async with make_manager(worker_count=1, max_queue_size=2) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        accepted = [manager.submit(use(i)) for i in range(2)]
        rejected = manager.queue_task_async(use())
        manager.queue_task_with_callback(use(), lambda r, e: got.append(e))
        with pytest.raises(QueueFullError, match="main queue is full"):
            await rejected
        assert manager.stats().queued_tasks == 2
        gate.set()
        assert [await f for f in accepted] == [0, 1]
        await blocker
        await settle()
        assert manager.metrics().total_tasks_arrived == 3
    assert len(got) == 1
    assert isinstance(got[0], QueueFullError)


async def test_queues_are_bounded_separately(make_manager: Make) -> None:
    """The bound applies per queue: a full main queue leaves room in the priority queue."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        main = manager.submit(use(1))
        prio = manager.submit(use(2), priority=True)
        assert not prio.done()
        gate.set()
        assert await main == 1
        assert await prio == 2
        await blocker


async def test_awaiting_forms_wait_for_room(make_manager: Make) -> None:
    """Awaiting callers wait while the queue is full and are accepted in turn."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        callers = [asyncio.create_task(manager.queue_task(use(i))) for i in range(4)]
        await settle()
        assert manager.stats().queued_tasks == 1
        assert not any(c.done() for c in callers)
        gate.set()
        assert await asyncio.gather(*callers) == [0, 1, 2, 3]
        await blocker


async def test_reruns_ignore_the_bound(make_manager: Make) -> None:
    """An unhealthy re-run is re-queued even when its queue is full."""
    gate = asyncio.Event()
    runs: list[int] = []

    class Broken(Exception):
        pass

    async def flaky(resource: Resource) -> str:
        runs.append(1)
        if len(runs) == 1:
            await gate.wait()
            raise Broken()
        return "second"

    async with make_manager(
        worker_count=1, max_queue_size=1, check_health=lambda e: not isinstance(e, Broken)
    ) as manager:
        first = manager.submit(flaky)
        await asyncio.sleep(0)
        prio = manager.submit(use("p"), priority=True)
        assert manager.stats().priority_tasks == 1
        gate.set()
        assert await first == "second"
        assert await prio == "p"


async def test_submit_leaves_room_to_a_waiting_caller(make_manager: Make) -> None:
    """Room freed for a caller waiting in queue_task is not taken by a later submit()."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        queued = manager.submit(use(1))
        waiting = asyncio.create_task(manager.queue_task(use(2)))
        await settle()
        assert not waiting.done()
        assert queued.cancel()  # frees the slot; the waiting caller is woken for it
        late = manager.submit(use(3))
        with pytest.raises(QueueFullError):
            await late
        gate.set()
        assert await waiting == 2
        await blocker
