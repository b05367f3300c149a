"""stop() and kill(): drain or cancel, answer everyone, destroy everything once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, TaskManager

from .helpers import Resource, Tracker, settle, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]
KILLED = "^task manager was killed$"
SHUTTING = "^task manager is shutting down$"


async def test_stop_runs_everything_accepted(make_manager: Make, tracker: Tracker) -> None:
    """stop() lets running and queued tasks finish without cancelling them."""
    gate = asyncio.Event()
    cancelled: list[int] = []

    async def slow(resource: Resource, i: int) -> int:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    manager = make_manager(worker_count=2)
    async with manager:
        futures = [manager.submit(partial(slow, i=i)) for i in range(6)]
        await asyncio.sleep(0)
        stopping = asyncio.create_task(manager.stop())
        await settle()
        assert manager.state == "stopping"
        with pytest.raises(ManagerStoppedError, match=SHUTTING):
            await manager.queue_task(use())
        with pytest.raises(ManagerStoppedError, match=SHUTTING):
            await manager.run_task(use())
        gate.set()
        await stopping
        assert manager.state == "stopped"
    assert [f.result() for f in futures] == list(range(6))
    assert cancelled == []
    assert tracker.alive == 0


async def test_kill_answers_everyone(make_manager: Make, tracker: Tracker) -> None:
    """kill() cancels running tasks and answers queued callers, futures and callbacks."""
    started = asyncio.Event()
    cancelled: list[str] = []
    callback_errors: list[BaseException | None] = []

    async def long(resource: Resource) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("running")
            raise

    async with make_manager(worker_count=1) as manager:
        running = manager.submit(long)
        await started.wait()
        caller = asyncio.create_task(manager.queue_task(use()))
        future = manager.queue_task_with_priority_async(use())
        manager.queue_task_with_callback(use(), lambda r, e: callback_errors.append(e))
        await wait_until(lambda: manager.stats().queued_tasks == 2)
        await manager.kill()
        assert manager.state == "stopped"
        for pending in (running, future):
            with pytest.raises(ManagerStoppedError, match=KILLED):
                await pending
        with pytest.raises(ManagerStoppedError, match=KILLED):
            await caller
        await settle()
    assert cancelled == ["running"]
    assert len(callback_errors) == 1 and isinstance(callback_errors[0], ManagerStoppedError)
    assert tracker.alive == 0


async def test_kill_cancels_run_task(make_manager: Make, tracker: Tracker) -> None:
    """kill() cancels run_task calls; their callers get ManagerStoppedError."""
    started = asyncio.Event()

    async def long(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    async with make_manager(worker_count=1, resource_pool_size=0) as manager:
        caller = asyncio.create_task(manager.run_task(long))
        await started.wait()
        await manager.kill()
        with pytest.raises(ManagerStoppedError, match=KILLED):
            await caller
    assert tracker.alive == 0


@pytest.mark.parametrize(
    "sequence",
    [
        ["stop", "stop"], ["kill", "kill"], ["stop", "kill"], ["kill", "stop"],
        ["stop&kill"], ["kill&stop"], ["stop&stop"], ["kill&kill"],
    ],
)  # fmt: skip
async def test_stop_and_kill_in_any_order(
    make_manager: Make, tracker: Tracker, sequence: list[str]
) -> None:
    """stop/kill are idempotent and safe in any order or concurrently; nobody hangs."""
    gate = asyncio.Event()
    async with make_manager(worker_count=2) as manager:
        futures = [manager.submit(use(i, gate=gate)) for i in range(5)]
        await asyncio.sleep(0)
        for step in sequence:
            names = step.split("&")
            calls = [getattr(manager, name)() for name in names]
            if "kill" not in names:
                gate.set()  # a graceful stop needs the tasks to be able to finish
            await asyncio.gather(*calls)
            assert manager.state == "stopped"
    for future in futures:
        assert future.done()
        if not future.cancelled() and future.exception() is not None:
            assert isinstance(future.exception(), ManagerStoppedError)
    assert tracker.alive == 0


async def test_kill_during_stop_escalates(make_manager: Make) -> None:
    """A kill() during a stop() that waits on a stuck task ends both."""
    started = asyncio.Event()

    async def stuck(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    async with make_manager(worker_count=1) as manager:
        future = manager.submit(stuck)
        await started.wait()
        stopping = asyncio.create_task(manager.stop())
        await settle()
        assert not stopping.done()
        await manager.kill()
        await stopping
        with pytest.raises(ManagerStoppedError, match=KILLED):
            await future


async def test_stop_timeout_escalates_to_kill(make_manager: Make) -> None:
    """stop(timeout=...) kills when the drain takes longer."""
    started = asyncio.Event()

    async def stuck(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    async with make_manager(worker_count=1) as manager:
        future = manager.submit(stuck)
        await started.wait()
        await manager.stop(timeout=0.01)
        assert manager.state == "stopped"
        with pytest.raises(ManagerStoppedError, match=KILLED):
            await future


async def test_stop_requeues_backoff_waiters_at_once(make_manager: Make) -> None:
    """stop() runs tasks waiting out a retry backoff now instead of after the delay."""
    runs: list[int] = []

    async def fail_once(resource: Resource) -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("x")
        return "ran again"

    async with make_manager() as manager:
        future = manager.submit(fail_once, retries=1, backoff=lambda a: 3600.0)
        await wait_until(lambda: len(runs) == 1 and manager.stats().running_tasks == 0)
        await manager.stop()
    assert await future == "ran again"


async def test_stop_refuses_callers_waiting_for_room(make_manager: Make) -> None:
    """Callers blocked on a full queue get ManagerStoppedError when shutdown begins."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        queued = manager.submit(use(1))
        waiting = asyncio.create_task(manager.queue_task(use(2)))
        await settle()
        stopping = asyncio.create_task(manager.stop())
        with pytest.raises(ManagerStoppedError, match=SHUTTING):
            await waiting
        gate.set()
        await stopping
    assert await queued == 1 and await blocker is None


async def test_exception_in_body_kills(make_manager: Make, tracker: Tracker) -> None:
    """Leaving the async with block by an exception kills the manager and propagates."""
    started = asyncio.Event()

    async def long(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    manager = make_manager(worker_count=1)
    with pytest.raises(ZeroDivisionError):
        async with manager:
            future = manager.submit(long)
            await started.wait()
            raise ZeroDivisionError
    assert manager.state == "stopped"
    with pytest.raises(ManagerStoppedError, match=KILLED):
        await future
    assert tracker.alive == 0


async def test_outer_cancellation_kills(make_manager: Make, tracker: Tracker) -> None:
    """Cancelling the task that holds the manager kills it and answers pending callers."""
    started = asyncio.Event()
    futures: list[asyncio.Future[Any]] = []

    async def long(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    async def owner() -> None:
        async with make_manager(worker_count=1) as manager:
            futures.append(manager.submit(long))
            futures.append(manager.submit(use()))
            await asyncio.Event().wait()

    task = asyncio.create_task(owner())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for future in futures:
        with pytest.raises(ManagerStoppedError, match=KILLED):
            await future
    assert tracker.alive == 0


async def test_cancelled_stop_caller_escalates(make_manager: Make, tracker: Tracker) -> None:
    """If the graceful stop in __aexit__ is cancelled, the manager is killed, not leaked."""
    started = asyncio.Event()
    futures: list[asyncio.Future[Any]] = []

    async def stuck(resource: Resource) -> None:
        started.set()
        await asyncio.Event().wait()

    async def owner() -> None:
        async with make_manager(worker_count=1) as manager:
            futures.append(manager.submit(stuck))
            await started.wait()

    task = asyncio.create_task(owner())
    await started.wait()
    await settle()
    assert not task.done()  # stuck in the graceful stop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ManagerStoppedError, match=KILLED):
        await futures[0]
    assert tracker.alive == 0


async def test_on_destroy_errors_are_logged(
    make_manager: Make, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """on_destroy failures are logged, not raised, and do not stop the shutdown."""
    destroyed: list[Any] = []

    async def bad_destroy(resource: Resource) -> None:
        destroyed.append(resource)
        await tracker.destroy(resource)
        raise OSError("close failed")

    async with make_manager(worker_count=2, on_destroy=bad_destroy):
        pass
    assert len(destroyed) == 4
    assert sum("close failed" in r.getMessage() for r in caplog.records) == 4


async def test_stop_is_quick_when_idle(make_manager: Make) -> None:
    """stop() on an idle manager returns after destroying everything; state reads stopped."""
    manager = make_manager(worker_count=3)
    async with manager:
        await manager.stop()
        assert manager.state == "stopped"
        assert manager.stats().active_workers == 0
        await manager.stop()
        await manager.kill()


async def test_stop_timeout_validation(make_manager: Make) -> None:
    """stop(timeout=-1) is rejected, naming the value."""
    async with make_manager() as manager:
        with pytest.raises(ValueError, match="timeout must be .* got -1"):
            await manager.stop(timeout=-1)
