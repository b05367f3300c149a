"""Burst scaling: the pure decision table and the loop against a real load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import TaskManager, TaskMetrics, TaskStats
from tasker_aio._engine.scaling import decide

from .helpers import Resource, Tracker, use

Make = Callable[..., TaskManager[Any, Any]]


def stats(active: int, burst: int, queued: int, running: int, priority: int = 0) -> TaskStats:
    return TaskStats(
        base_workers=active - burst, active_workers=active, burst_workers=burst,
        queued_tasks=queued, priority_tasks=priority, running_tasks=running,
        available_resources=0,
    )  # fmt: skip


def rates(arrival: float, completion: float) -> TaskMetrics:
    return TaskMetrics(task_arrival_rate=arrival, task_completion_rate=completion)


@pytest.mark.parametrize(
    ("metrics", "snapshot", "maximum", "creating", "idle_burst", "expected"),
    [
        # overload scales up by the deficit: 2 workers finish 100/s, 300/s arrive -> 6
        (rates(300, 100), stats(2, 0, 50, 2), 10, 0, 0, 4),
        # ... capped at the maximum
        (rates(300, 100), stats(2, 0, 50, 2), 4, 0, 0, 2),
        # in-flight creations count toward the cap
        (rates(300, 100), stats(2, 0, 50, 2), 4, 2, 0, 0),
        (rates(300, 100), stats(2, 0, 50, 2), 5, 2, 0, 1),
        # in-flight creations also count toward the deficit
        (rates(300, 100), stats(2, 0, 50, 2), 10, 3, 0, 1),
        # backlog but no rates yet (nothing completed): grow by one
        (rates(0, 0), stats(1, 0, 10, 1), 4, 0, 0, 1),
        # never more than the backlog
        (rates(1000, 10), stats(1, 0, 2, 1), 50, 0, 0, 2),
        # priority backlog counts too
        (rates(0, 0), stats(1, 0, 0, 1, priority=3), 4, 0, 0, 1),
        # a free worker will take the backlog: no change
        (rates(300, 100), stats(3, 0, 5, 2), 10, 0, 0, 0),
        # steady matched load, nothing waiting, nobody idle long: no change
        (rates(100, 100), stats(4, 2, 0, 4), 8, 0, 0, 0),
        (rates(100, 100), stats(4, 2, 0, 3), 8, 0, 0, 0),
        # idle after load: retire the burst workers that sat idle through the grace
        (rates(50, 50), stats(4, 2, 0, 0), 8, 0, 2, -2),
        (rates(0, 0), stats(4, 3, 0, 1), 8, 0, 1, -1),
        # work waiting: never retire, even with stale idle workers counted
        (rates(0, 0), stats(4, 2, 3, 4), 8, 0, 0, 1),
        # zero workers alive with queued work recovers
        (rates(0, 0), stats(0, 0, 5, 0), 4, 0, 0, 1),
        (rates(0, 0), stats(0, 0, 5, 0), 4, 1, 0, 0),
        # at the maximum: nothing to add
        (rates(500, 100), stats(4, 2, 9, 4), 4, 0, 0, 0),
    ],
)
def test_decide_table(
    metrics: TaskMetrics,
    snapshot: TaskStats,
    maximum: int,
    creating: int,
    idle_burst: int,
    expected: int,
) -> None:
    """decide() adds by the deficit within the cap and retires only long-idle burst workers."""
    change = decide(metrics, snapshot, maximum=maximum, creating=creating, idle_burst=idle_burst)
    assert change == expected


def sleeper(seconds: float) -> Callable[[Resource], Any]:
    async def task(resource: Resource) -> None:
        resource.acquire()
        try:
            await asyncio.sleep(seconds)
        finally:
            resource.release()

    return task


async def test_bursts_up_and_back_down(make_manager: Make, tracker: Tracker) -> None:
    """1 base worker, max 4: a backlog of 20 ms tasks bursts to >= 3, then back to 0."""
    peak_active = 0
    async with make_manager(
        worker_count=1, max_worker_count=4, resource_pool_size=0, burst_interval=0.01
    ) as manager:
        futures = [manager.submit(sleeper(0.02)) for _ in range(150)]
        while not all(f.done() for f in futures):
            peak_active = max(peak_active, manager.stats().active_workers)
            await asyncio.sleep(0.005)
        await asyncio.gather(*futures)
        assert peak_active >= 3
        async with asyncio.timeout(2.0):  # within max(2 s, 20 intervals)
            while (
                manager.stats().burst_workers or len(tracker.created) - len(tracker.destroyed) > 1
            ):
                await asyncio.sleep(0.01)
        assert manager.stats().active_workers == 1
    assert tracker.peak <= 4


async def test_slow_create_never_overshoots(make_manager: Make, tracker: Tracker) -> None:
    """With a 50 ms on_create and a 5 ms tick, live + creating workers stay <= max."""

    async def slow_create() -> Resource:
        await asyncio.sleep(0.05)
        return await tracker.create()

    async with make_manager(
        worker_count=1, max_worker_count=4, resource_pool_size=0, burst_interval=0.005,
        on_create=slow_create,
    ) as manager:  # fmt: skip
        await asyncio.gather(*(manager.submit(sleeper(0.01)) for _ in range(60)))
        assert len(tracker.created) > 1
    assert tracker.peak <= 4


async def test_bursting_disabled_keeps_worker_count(make_manager: Make, tracker: Tracker) -> None:
    """burst_interval=None keeps exactly worker_count workers under any backlog."""
    async with make_manager(worker_count=2, resource_pool_size=0, burst_interval=None) as m:
        futures = [m.submit(sleeper(0.001)) for _ in range(40)]
        await asyncio.sleep(0.02)
        assert m.stats().active_workers == 2
        await asyncio.gather(*futures)
    assert len(tracker.created) == 2


async def test_retired_worker_finishes_its_task(make_manager: Make, tracker: Tracker) -> None:
    """Retiring never interrupts a task: every burst-era task completes with its value."""
    async with make_manager(
        worker_count=1, max_worker_count=3, resource_pool_size=0, burst_interval=0.005
    ) as manager:
        for round_ in range(3):
            values = await asyncio.gather(*(manager.queue_task(use(i)) for i in range(30)))
            assert values == list(range(30)), round_
            await asyncio.gather(*(manager.submit(sleeper(0.01)) for _ in range(10)))
    assert tracker.alive == 0
