"""Starting and entering: resources, readiness, failures, single use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, ResourceCreationError, TaskManager

from .helpers import Tracker, use

Make = Callable[..., TaskManager[Any, Any]]


async def test_enter_creates_pool_and_ready_workers(make_manager: Make, tracker: Tracker) -> None:
    """__aenter__ returns with every base worker ready and the pool filled."""
    manager = make_manager(worker_count=3, resource_pool_size=2)
    assert manager.state == "new"
    async with manager:
        assert manager.state == "running"
        assert tracker.alive == 5
        stats = manager.stats()
        assert stats.active_workers == stats.base_workers == 3
        assert stats.burst_workers == 0
        assert stats.available_resources == 2
    assert manager.state == "stopped"
    assert tracker.alive == 0


async def test_default_pool_size_is_worker_count(make_manager: Make) -> None:
    """resource_pool_size=None keeps worker_count idle resources for run_task."""
    async with make_manager(worker_count=2) as manager:
        assert manager.stats().available_resources == 2


async def test_failed_create_destroys_what_was_made(make_manager: Make, tracker: Tracker) -> None:
    """If an on_create fails on entry, the rest is destroyed and the cause chained."""
    tracker.fail_creates = 1
    manager = make_manager(worker_count=3)
    with pytest.raises(ResourceCreationError, match="^failed to initialize") as caught:
        await manager.__aenter__()
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert manager.state == "stopped"
    assert len(tracker.created) == 5 and tracker.alive == 0


async def test_failed_manager_refuses_work(make_manager: Make, tracker: Tracker) -> None:
    """A manager whose start failed cannot be entered again; stop() returns at once."""
    tracker.fail_creates = 1
    manager = make_manager(worker_count=1, resource_pool_size=0)
    with pytest.raises(ResourceCreationError):
        async with manager:
            pass
    await manager.stop()
    await manager.kill()
    with pytest.raises(RuntimeError, match="runs once"):
        await manager.__aenter__()


async def test_entering_twice_fails(make_manager: Make) -> None:
    """A manager runs once: entering it again raises RuntimeError."""
    manager = make_manager()
    async with manager:
        with pytest.raises(RuntimeError, match="runs once"):
            await manager.__aenter__()
    with pytest.raises(RuntimeError, match="runs once"):
        await manager.__aenter__()


async def test_sync_factories_are_accepted(tracker: Tracker) -> None:
    """on_create and on_destroy may be plain functions."""
    from tasker_aio import Config

    made: list[object] = []
    gone: list[object] = []

    def create() -> object:
        made.append(object())
        return made[-1]

    async with TaskManager[object, int](
        Config(on_create=create, on_destroy=gone.append, worker_count=2, burst_interval=None)
    ) as manager:
        assert await manager.queue_task(lambda r: asyncio.sleep(0, 7)) == 7
        assert await manager.run_task(lambda r: asyncio.sleep(0, 5)) == 5
    assert sorted(map(id, made)) == sorted(map(id, gone))


async def test_state_after_stop_and_submissions_refused(make_manager: Make) -> None:
    """After stop every submission fails with ManagerStoppedError; stats read zero workers."""
    async with make_manager() as manager:
        pass
    assert manager.state == "stopped"
    with pytest.raises(ManagerStoppedError, match="^task manager is shutting down$"):
        await manager.queue_task(use())
    with pytest.raises(ManagerStoppedError, match="^task manager is shutting down$"):
        await manager.run_task(use())
    future = manager.queue_task_async(use())
    with pytest.raises(ManagerStoppedError):
        await future
    stats = manager.stats()
    assert stats.active_workers == 0 and stats.available_resources == 0


async def test_submitting_before_start_is_an_error(make_manager: Make) -> None:
    """Submitting to a manager that was never entered raises RuntimeError."""
    manager = make_manager()
    with pytest.raises(RuntimeError, match="async with"):
        manager.submit(use())  # type: ignore[unused-awaitable]
    with pytest.raises(RuntimeError, match="async with"):
        await manager.queue_task(use())


def test_non_blocking_call_without_a_loop(make_manager: Make) -> None:
    """A non-blocking method called outside any event loop says what is wrong."""
    manager = make_manager()
    with pytest.raises(RuntimeError, match="event loop"):
        manager.queue_task_async(use())  # type: ignore[unused-awaitable]


async def test_stop_before_start(make_manager: Make, tracker: Tracker) -> None:
    """Stopping a manager that never started marks it stopped and creates nothing."""
    manager = make_manager()
    await manager.stop()
    assert manager.state == "stopped"
    assert tracker.created == []


async def test_repr_shows_counts(make_manager: Make) -> None:
    """repr() shows the state and the worker and queue counts."""
    async with make_manager(worker_count=2) as manager:
        text = repr(manager)
    assert "state=running" in text and "workers=2/4" in text and "queued=0" in text


async def test_enter_cancelled_destroys_created(make_manager: Make, tracker: Tracker) -> None:
    """Cancelling the caller while on_create runs destroys what was created."""
    gate = asyncio.Event()
    tracker.create_gate = gate
    manager = make_manager(worker_count=2)
    entering = asyncio.ensure_future(manager.__aenter__())
    while tracker.creating < 4:
        await asyncio.sleep(0)
    gate.set()
    await asyncio.sleep(0)
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert manager.state == "stopped"
    assert tracker.alive == 0


async def test_enter_and_exit_in_different_tasks(make_manager: Make, tracker: Tracker) -> None:
    """The manager may be entered by one task and left by another (aiohttp cleanup_ctx)."""
    manager = make_manager(worker_count=1)
    await asyncio.create_task(manager.__aenter__())
    assert await manager.queue_task(use(5)) == 5
    await asyncio.create_task(manager.__aexit__(None, None, None))
    assert manager.state == "stopped"
    assert tracker.alive == 0


async def test_body_exception_is_not_wrapped(make_manager: Make) -> None:
    """An exception raised in the async with body propagates as itself, not in a group."""
    with pytest.raises(KeyError):
        async with make_manager():
            raise KeyError("mine")


async def test_entering_after_a_stop_says_it_was_stopped(make_manager: Make) -> None:
    """A manager stopped (or killed) before it was entered refuses entry, saying why."""
    manager = make_manager()
    await manager.kill()
    with pytest.raises(RuntimeError, match="stopped before it was entered"):
        await manager.__aenter__()
