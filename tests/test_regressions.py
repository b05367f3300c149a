"""Regression tests, each named after a bug the review or the harness found."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import Config, ManagerStoppedError, TaskManager

from .helpers import Resource, Tracker, settle, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]


class Broken(Exception):
    pass


def healthy(exc: BaseException) -> bool:
    return not isinstance(exc, Broken)


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_shutdown_requested_during_enter_is_applied(
    make_manager: Make, tracker: Tracker, how: str
) -> None:
    """stop()/kill() called while __aenter__ creates resources takes effect; nothing hangs."""
    gate = asyncio.Event()
    tracker.create_gate = gate
    manager = make_manager(worker_count=1)
    entered = asyncio.Event()

    async def body() -> None:
        async with manager:
            entered.set()
            assert manager.state in ("stopping", "stopped")
            with pytest.raises(ManagerStoppedError):
                await manager.queue_task(use())

    owner = asyncio.create_task(body())
    await wait_until(lambda: tracker.creating == 2)
    shutdown = asyncio.create_task(getattr(manager, how)())
    await settle()
    assert not shutdown.done()
    gate.set()
    await asyncio.gather(owner, shutdown)
    assert entered.is_set()
    assert manager.state == "stopped"
    assert tracker.alive == 0


async def test_burst_worker_sees_rerun_through_during_drain(
    make_manager: Make, tracker: Tracker
) -> None:
    """A burst worker whose replacement fails during stop() keeps trying: the re-run is answered."""
    hold = asyncio.Event()
    runs: list[int] = []

    async def flaky(resource: Resource) -> str:
        runs.append(resource.ident)
        if len(runs) == 1:
            await hold.wait()
            raise Broken()
        return "second run"

    async with make_manager(
        worker_count=1, max_worker_count=2, resource_pool_size=0, check_health=healthy
    ) as manager:
        manager._workers.spawn(burst=True)  # a burst worker, as the burst loop would add
        await wait_until(lambda: manager.stats().burst_workers == 1)
        blocker_gate = asyncio.Event()
        blocker = manager.submit(use(gate=blocker_gate))
        future = manager.submit(flaky)
        await wait_until(lambda: manager.stats().running_tasks == 2)
        blocker_gate.set()
        await blocker
        stopping = asyncio.create_task(manager.stop())
        await settle()
        tracker.fail_creates = 2
        hold.set()
        await stopping
    assert await future == "second run"


async def test_async_callback_awaiting_stop_does_not_deadlock(make_manager: Make) -> None:
    """An async callback that awaits manager.stop() lets the shutdown finish."""
    stopped = asyncio.Event()
    manager = make_manager()

    async def callback(result: Any, error: BaseException | None) -> None:
        await manager.stop()
        stopped.set()

    async with manager:
        manager.queue_task_with_callback(use(1), callback)
        await stopped.wait()
    assert manager.state == "stopped"


async def test_waiting_callers_are_served_in_order(make_manager: Make) -> None:
    """Callers waiting for room get it first come, first served; newcomers queue behind."""
    order: list[str] = []
    gate = asyncio.Event()

    def named(name: str) -> Callable[[Resource], Any]:
        async def task(resource: Resource) -> None:
            order.append(name)

        return task

    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        first = manager.submit(named("queued"))
        waiting = [asyncio.create_task(manager.queue_task(named(f"w{i}"))) for i in range(3)]
        await settle()
        gate.set()
        await asyncio.sleep(0)
        late = asyncio.create_task(manager.queue_task(named("late")))
        await asyncio.gather(blocker, first, *waiting, late)
    assert order == ["queued", "w0", "w1", "w2", "late"]


async def test_cancel_turned_into_error_is_not_retried(make_manager: Make) -> None:
    """A caller-cancelled task that raises another error is not re-run, and counts as failed."""
    started = asyncio.Event()
    runs: list[int] = []

    async def converts(resource: Resource) -> None:
        runs.append(1)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    async with make_manager(task_retries=3, retry_backoff=lambda a: 0.0) as manager:
        future = manager.submit(converts)
        await started.wait()
        future.cancel()
        await wait_until(lambda: manager.metrics().total_tasks_failed == 1)
        assert await manager.queue_task(use(1)) == 1
        metrics = manager.metrics()
    assert runs == [1]
    assert metrics.total_tasks_retried == 0


@pytest.mark.parametrize("mode", ["raise", "convert", "swallow"])
async def test_killed_task_counted_once(make_manager: Make, mode: str) -> None:
    """A task killed while running counts as one failure, whatever it does with the cancel."""
    started = asyncio.Event()

    async def task(resource: Resource) -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if mode == "convert":
                raise ValueError("x") from None
            if mode == "swallow":
                return 1
            raise
        return 0

    async with make_manager(task_retries=2, retry_backoff=lambda a: 0.0) as manager:
        future = manager.submit(task)
        await started.wait()
        await manager.kill()
        metrics = manager.metrics()
    with pytest.raises(ManagerStoppedError):
        await future
    assert metrics.total_tasks_failed == 1
    assert metrics.total_tasks_retried == 0


async def test_map_during_stop_yields_accepted_work(make_manager: Make) -> None:
    """A graceful stop lets map() yield the results it already had in flight, then raise."""
    gate = asyncio.Event()

    async def slow(resource: Resource, item: int) -> int:
        await gate.wait()
        return item

    got: list[int] = []
    async with make_manager(worker_count=2) as manager:
        stream = manager.map(slow, range(100), max_in_flight=3)
        first = asyncio.ensure_future(anext(stream))
        await wait_until(lambda: manager.stats().running_tasks == 2)
        stopping = asyncio.create_task(manager.stop())
        await settle()
        gate.set()
        got.append(await first)
        with pytest.raises(ManagerStoppedError):
            async for value in stream:
                got.append(value)
        await stopping
    assert got == [0, 1, 2]


async def test_stop_inside_a_task_is_refused(make_manager: Make) -> None:
    """Awaiting stop() inside one of the manager's own tasks raises instead of deadlocking."""

    async def stops(resource: Resource) -> None:
        await manager.stop()

    async with make_manager() as manager:
        with pytest.raises(RuntimeError, match="would wait for"):
            await manager.queue_task(stops)


async def test_retired_worker_takes_work_that_just_arrived(make_manager: Make) -> None:
    """A burst worker picked for retirement runs a task that arrived before it left."""
    async with make_manager(worker_count=1, max_worker_count=2, resource_pool_size=0) as m:
        gate = asyncio.Event()
        blocker = m.submit(use(gate=gate))
        m._workers.spawn(burst=True)
        await wait_until(lambda: len(m._workers.idle.burst) == 1)
        assert m._workers.retire(1, idle_for=0.0) == 1
        quick = m.submit(use("quick"))  # no idle worker left to wake
        assert await quick == "quick"
        gate.set()
        await blocker


@pytest.mark.parametrize("how", ["future", "caller"])
async def test_cancel_from_inside_the_running_task_keeps_its_worker(
    make_manager: Make, how: str
) -> None:
    """A task whose future (or awaiting caller) is cancelled from its own fn leaves its worker."""
    holder: dict[str, Any] = {}

    async def cancels_itself(resource: Resource) -> str:
        holder[how].cancel()  # e.g. an anyio scope cancelled by the task it awaits
        return "x"

    async with make_manager(worker_count=1) as manager:
        holder["future"] = manager.submit(cancels_itself)
        if how == "caller":
            holder["caller"] = asyncio.create_task(_await(manager.queue_task_async(cancels_itself)))
        with pytest.raises(asyncio.CancelledError):
            await holder[how]
        assert await manager.queue_task(use(7)) == 7  # the worker survived, idle
        assert manager.stats().active_workers == 1


async def _await(future: asyncio.Future[Any]) -> Any:
    return await future


async def test_cancelled_waiting_caller_passes_room_on(make_manager: Make) -> None:
    """Room freed while a cancelled caller still stands in line goes to the caller behind it."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, max_queue_size=1) as manager:
        blocker = manager.submit(use(gate=gate))
        await asyncio.sleep(0)
        queued = manager.submit(use(1))
        first = asyncio.create_task(manager.queue_task(use(2)))
        await asyncio.sleep(0)  # first waits in line for room
        second = asyncio.create_task(manager.queue_task(use(3)))
        first.cancel()
        queued.cancel()  # room frees while first, cancelled, is still in line
        await settle()
        assert first.cancelled()
        assert manager.stats().queued_tasks == 1  # second got the room
        gate.set()
        assert await second == 3
        await blocker


def test_submit_while_the_loop_is_not_running_is_refused(tracker: Tracker) -> None:
    """A call from the loop's thread between runs of the loop raises RuntimeError."""
    manager: TaskManager[Resource, int] = TaskManager(
        Config(on_create=tracker.create, on_destroy=tracker.destroy, worker_count=1)
    )
    with asyncio.Runner() as runner:
        runner.run(manager.__aenter__())
        with pytest.raises(RuntimeError, match="called from the event loop"):
            _ = manager.submit(use(1))
        runner.run(manager.__aexit__(None, None, None))
    assert tracker.created and sorted(map(id, tracker.destroyed)) == sorted(
        map(id, tracker.created)
    )


async def test_cancel_from_backoff_counts_one_failure(make_manager: Make) -> None:
    """A future cancelled from inside backoff() gets no re-run and counts one failure."""
    holder: dict[str, asyncio.Future[Any]] = {}
    runs = 0

    def backoff(attempt: int) -> float:
        holder["future"].cancel()
        return 0.0

    async def fails(resource: Resource) -> None:
        nonlocal runs
        runs += 1
        raise ValueError("healthy failure")

    async with make_manager(worker_count=1, task_retries=3, retry_backoff=backoff) as manager:
        holder["future"] = manager.submit(fails)
        with pytest.raises(asyncio.CancelledError):
            await holder["future"]
        await settle()
        assert manager.metrics().total_tasks_failed == 1
        assert manager.stats().queued_tasks == 0
    assert runs == 1
