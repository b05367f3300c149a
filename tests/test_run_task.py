"""run_task: immediate execution on a pooled or temporary resource."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import ResourceCreationError, TaskManager

from .helpers import Resource, Tracker, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]


class Broken(Exception):
    pass


async def test_uses_pool_resource_and_returns_it(make_manager: Make, tracker: Tracker) -> None:
    """run_task takes an idle pool resource and gives it back afterwards."""
    async with make_manager(worker_count=1, resource_pool_size=1) as manager:
        gate = asyncio.Event()
        running = asyncio.create_task(manager.run_task(use("x", gate=gate)))
        await wait_until(lambda: manager.stats().available_resources == 0)
        gate.set()
        assert await running == "x"
        assert manager.stats().available_resources == 1
        assert len(tracker.created) == 2


async def test_bypasses_busy_workers(make_manager: Make) -> None:
    """run_task runs at once even when every worker is busy and work is queued."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1) as manager:
        blocked = [manager.submit(use(gate=gate)) for _ in range(3)]
        await asyncio.sleep(0)
        assert await manager.run_task(use("now")) == "now"
        gate.set()
        await asyncio.gather(*blocked)


async def test_temporary_resource_when_pool_empty(make_manager: Make, tracker: Tracker) -> None:
    """With no idle pool resource, a temporary one is created and destroyed after."""
    async with make_manager(worker_count=1, resource_pool_size=0) as manager:
        assert await manager.run_task(use(1)) == 1
        assert len(tracker.created) == 2
        assert tracker.alive == 1


async def test_exception_propagates_unchanged(make_manager: Make) -> None:
    """A task exception propagates as is, without retries."""
    runs: list[int] = []
    boom = ValueError("boom")

    async def fail(resource: Resource) -> None:
        runs.append(1)
        raise boom

    async with make_manager(task_retries=3) as manager:
        with pytest.raises(ValueError, match="boom") as caught:
            await manager.run_task(fail)
        assert caught.value is boom
        assert manager.stats().available_resources == 2
    assert runs == [1]


async def test_unhealthy_pool_resource_is_replaced(make_manager: Make, tracker: Tracker) -> None:
    """An unhealthy failure destroys the pool resource; the pool refills in the background.

    The refill is created while the broken resource is destroyed; run_task returns once
    the broken one is gone.
    """
    used: list[Resource] = []

    async def crash(resource: Resource) -> None:
        used.append(resource)
        raise Broken()

    async with make_manager(
        worker_count=1, resource_pool_size=1, check_health=lambda e: not isinstance(e, Broken)
    ) as manager:
        first_pool = manager.stats().available_resources
        with pytest.raises(Broken):
            await manager.run_task(crash)
        assert used[0] in tracker.destroyed
        await wait_until(lambda: manager.stats().available_resources == 1)
        assert tracker.alive == 2
        assert first_pool == 1
        assert len(tracker.created) == 3


async def test_temporary_create_failure(make_manager: Make, tracker: Tracker) -> None:
    """If the temporary on_create fails: ResourceCreationError with the cause chained."""
    async with make_manager(worker_count=1, resource_pool_size=0) as manager:
        tracker.fail_creates = 1
        with pytest.raises(
            ResourceCreationError, match="^failed to create temporary resource: cannot connect$"
        ) as caught:
            await manager.run_task(use())
        assert isinstance(caught.value.__cause__, ConnectionError)
        assert await manager.run_task(use(2)) == 2


async def test_caller_cancellation_propagates(make_manager: Make, tracker: Tracker) -> None:
    """Cancelling a run_task caller cancels the task and still returns the resource."""
    started = asyncio.Event()

    async def long(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    async with make_manager(worker_count=1, resource_pool_size=1) as manager:
        caller = asyncio.create_task(manager.run_task(long))
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert manager.stats().available_resources == 1


async def test_graceful_stop_waits_for_run_task(make_manager: Make, tracker: Tracker) -> None:
    """stop() lets an in-flight run_task finish before destroying the pool."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, resource_pool_size=1) as manager:
        running = asyncio.create_task(manager.run_task(use("done", gate=gate)))
        await wait_until(lambda: manager.stats().available_resources == 0)
        stopping = asyncio.create_task(manager.stop())
        await asyncio.sleep(0)
        assert not stopping.done()
        gate.set()
        await stopping
        assert await running == "done"
    assert tracker.alive == 0
