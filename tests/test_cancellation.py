"""Caller cancellation: discard queued tasks, cancel running ones, never swallow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import TaskManager

from .helpers import Resource, settle, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]


def record(ran: list[int]) -> Callable[[Resource], Any]:
    async def task(resource: Resource) -> None:
        ran.append(1)

    return task


async def test_cancelled_while_queued_never_runs(make_manager: Make) -> None:
    """Cancelling the awaiting caller of a queued task discards it; it never runs."""
    ran: list[str] = []
    gate = asyncio.Event()

    async def never(resource: Resource) -> None:
        ran.append("never")

    async with make_manager(worker_count=1) as manager:
        blocker = manager.submit(use(gate=gate))
        caller = asyncio.create_task(manager.queue_task(never))
        await wait_until(lambda: manager.stats().queued_tasks == 1)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await settle()
        assert manager.stats().queued_tasks == 0
        gate.set()
        await blocker
        assert await manager.queue_task(use(1)) == 1
        metrics = manager.metrics()
    assert ran == []
    assert metrics.total_tasks_failed == 0 and metrics.total_tasks_completed == 2


async def test_timeout_on_caller_discards(make_manager: Make) -> None:
    """asyncio.timeout() around queue_task discards the queued task."""
    ran: list[int] = []
    gate = asyncio.Event()
    async with make_manager(worker_count=1) as manager:
        blocker = manager.submit(use(gate=gate))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await manager.queue_task(record(ran))
        gate.set()
        await blocker
    assert ran == []


async def test_cancel_running_task_keeps_worker(make_manager: Make) -> None:
    """Cancelling the caller of a running task cancels only that task; the worker lives."""
    started = asyncio.Event()
    seen: list[BaseException] = []
    inside: list[str] = []

    async def long(resource: Resource) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            inside.append("cancelled")
            raise

    def check(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    async with make_manager(worker_count=1, check_health=check) as manager:
        caller = asyncio.create_task(manager.queue_task(long))
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await manager.queue_task(use(2)) == 2
        assert manager.stats().active_workers == 1
        assert manager.metrics().total_tasks_failed == 1
    assert inside == ["cancelled"]
    assert len(seen) == 1 and isinstance(seen[0], asyncio.CancelledError)


async def test_cancel_running_unhealthy_replaces(make_manager: Make, tracker: Any) -> None:
    """check_health may call an interrupted resource unhealthy: it is replaced, not re-run."""
    started = asyncio.Event()
    runs: list[int] = []

    async def long(resource: Resource) -> None:
        runs.append(resource.ident)
        started.set()
        await asyncio.Event().wait()

    def check(exc: BaseException) -> bool:
        return not isinstance(exc, asyncio.CancelledError)

    async with make_manager(worker_count=1, resource_pool_size=0, check_health=check) as m:
        future = m.submit(long)
        await started.wait()
        future.cancel()
        await wait_until(lambda: len(tracker.created) == 2 and m.stats().active_workers == 1)
        assert await m.queue_task(use(3)) == 3
    assert len(runs) == 1


async def test_cancel_future_of_queued_task(make_manager: Make) -> None:
    """Cancelling a *_async future of a queued task discards it."""
    ran: list[int] = []
    gate = asyncio.Event()
    async with make_manager(worker_count=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        future = manager.queue_task_async(record(ran))
        assert manager.stats().queued_tasks == 1
        future.cancel()
        await settle()
        assert manager.stats().queued_tasks == 0
        gate.set()
        await blocker
    assert ran == []


async def test_cancelling_a_future_frees_its_room_at_once(make_manager: Make) -> None:
    """Cancelling a queued task's future frees its queue slot before the loop turns."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        first = manager.submit(use(1))
        assert manager.stats().queued_tasks == 1
        assert first.cancel()
        assert manager.stats().queued_tasks == 0  # no loop turn in between
        second = manager.submit(use(2))  # the room is free again
        assert not second.done()
        gate.set()
        assert await second == 2
        await blocker


async def test_cancelling_a_gather_of_futures_discards_them(make_manager: Make) -> None:
    """Cancelling gather() over submit() futures discards every task still queued."""
    ran: list[int] = []
    gate = asyncio.Event()
    async with make_manager(worker_count=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        group = asyncio.gather(*[manager.submit(record(ran)) for _ in range(5)])
        assert manager.stats().queued_tasks == 5
        group.cancel()
        assert manager.stats().queued_tasks == 0
        with pytest.raises(asyncio.CancelledError):
            await group
        gate.set()
        await blocker
    assert ran == []


async def test_callers_own_cancellation_is_not_swallowed(make_manager: Make) -> None:
    """A caller cancelled while its task runs still ends cancelled, even if the task returns."""
    started = asyncio.Event()
    finish = asyncio.Event()

    async def stubborn(resource: Resource) -> str:
        started.set()
        try:
            await finish.wait()
        except asyncio.CancelledError:
            return "ignored the cancel"
        return "done"

    async with make_manager(worker_count=1) as manager:
        caller = asyncio.create_task(manager.queue_task(stubborn))
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert caller.cancelled()
        assert await manager.queue_task(use(4)) == 4


async def test_cancel_while_waiting_for_room(make_manager: Make) -> None:
    """A caller cancelled while waiting for room in a full queue leaves nothing queued."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        queued = manager.submit(use(1))
        waiting = asyncio.create_task(manager.queue_task(use(2)))
        await settle()
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.set()
        assert await queued == 1
        await blocker
        assert manager.stats().queued_tasks == 0


async def test_cancel_during_backoff(make_manager: Make) -> None:
    """A task cancelled while waiting out its backoff never runs again."""
    runs: list[int] = []

    async def fail(resource: Resource) -> None:
        runs.append(1)
        raise ValueError("x")

    async with make_manager() as manager:
        future = manager.submit(fail, retries=3, backoff=lambda a: 3600.0)
        await wait_until(lambda: len(runs) == 1 and manager.stats().running_tasks == 0)
        future.cancel()
        await settle()
    assert runs == [1]
    assert manager.metrics().total_tasks_failed == 1
