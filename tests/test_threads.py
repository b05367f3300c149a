"""submit_threadsafe(): submitting from any thread, with a concurrent.futures.Future."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, TaskManager

from .helpers import Resource, Tracker, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]
WAIT = 5.0  # seconds: how long a thread waits for an answer before the test fails


async def in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


async def test_a_thread_gets_the_value(make_manager: Make) -> None:
    """A thread's submit_threadsafe(fn).result() returns the task's value."""
    async with make_manager() as manager:
        future = await in_thread(lambda: manager.submit_threadsafe(use(7)))
        assert isinstance(future, concurrent.futures.Future)
        assert await in_thread(lambda: future.result(WAIT)) == 7


async def test_a_thread_gets_the_error(make_manager: Make) -> None:
    """The task's exception reaches the thread through the future, unchanged."""

    async def fails(resource: Resource) -> None:
        raise KeyError("missing")

    async with make_manager() as manager:
        future = await in_thread(lambda: manager.submit_threadsafe(fails, priority=True))
        with pytest.raises(KeyError, match="missing"):
            await in_thread(lambda: future.result(WAIT))


async def test_cancelling_discards_a_queued_task(make_manager: Make) -> None:
    """Cancelling the future of a queued task discards it: it never runs."""
    gate = asyncio.Event()
    ran: list[str] = []

    async def recorded(resource: Resource) -> None:
        ran.append("ran")

    async with make_manager(worker_count=1) as manager:
        blocker = manager.submit(use(gate=gate))
        future = await in_thread(lambda: manager.submit_threadsafe(recorded))
        await wait_until(lambda: manager.stats().queued_tasks == 1)
        assert await in_thread(future.cancel)
        await wait_until(lambda: manager.stats().queued_tasks == 0)
        gate.set()
        await blocker
    assert ran == []


async def test_cancelling_cancels_a_running_task(make_manager: Make) -> None:
    """Cancelling the future of a running task cancels it; the worker carries on."""
    started = asyncio.Event()
    seen: list[str] = []

    async def long(resource: Resource) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async with make_manager(worker_count=1) as manager:
        future = await in_thread(lambda: manager.submit_threadsafe(long))
        await started.wait()
        assert await in_thread(future.cancel)
        await wait_until(lambda: seen == ["cancelled"])
        assert await manager.queue_task(use(1)) == 1


async def test_after_shutdown_the_future_says_stopped(make_manager: Make) -> None:
    """Once shutdown began, a thread's future is answered ManagerStoppedError."""
    async with make_manager() as manager:
        await manager.stop()
        future = await in_thread(lambda: manager.submit_threadsafe(use()))
        with pytest.raises(ManagerStoppedError):
            await in_thread(lambda: future.result(WAIT))


def test_before_entering_it_says_so(make_manager: Make) -> None:
    """submit_threadsafe before 'async with' raises RuntimeError; a non-callable TypeError."""
    manager = make_manager()
    with pytest.raises(RuntimeError, match="enter it with 'async with' first"):
        manager.submit_threadsafe(use())
    with pytest.raises(TypeError, match="fn must be callable, got 3"):
        manager.submit_threadsafe(3)  # type: ignore[arg-type]


async def test_many_threads_at_once(make_manager: Make, tracker: Tracker) -> None:
    """Eight threads submitting 50 tasks each: every one answered, resources exclusive."""

    def worker(offset: int) -> list[int]:
        futures = [manager.submit_threadsafe(use(offset + i)) for i in range(50)]
        return [future.result(WAIT) for future in futures]

    offsets = range(0, 800, 100)
    async with make_manager(worker_count=3) as manager:
        results = await asyncio.gather(*(asyncio.to_thread(worker, o) for o in offsets))
    assert [sorted(r) for r in results] == [list(range(o, o + 50)) for o in offsets]
    tracker.assert_balanced()
