"""Regression tests for the reliability review (issue 14), one or more per finding.

Each test is named after the finding it pins. A *stray* ``CancelledError`` is one that
nobody asked for: code awaited a future that somebody else cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tasker_aio import (
    Config,
    ConfigError,
    ManagerStoppedError,
    MaxRetriesExceededError,
    ResourceCreationError,
    TaskLifecycleTimestamps,
    TaskManager,
    TaskMetrics,
    new_collector,
)

from .helpers import Resource, Tracker, settle, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]
HANG = 5.0  # seconds: detects a hang; never a speed requirement


class Broken(Exception):
    """An error check_health calls unhealthy."""


def unhealthy_if_broken(exc: BaseException) -> bool:
    return not isinstance(exc, Broken)


async def stray_cancel() -> None:
    """Raise a CancelledError nobody asked for: await a future somebody cancelled."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    await future


async def breaks(resource: Resource) -> None:
    raise Broken("broken")


# 1 -------------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
async def test_1_stop_async_iteration_from_a_task_does_not_end_map(
    make_manager: Make, ordered: bool
) -> None:
    """A task raising StopAsyncIteration fails map() with RuntimeError; nothing is dropped."""

    async def step(resource: Resource, item: int) -> int:
        if item == 2:
            raise StopAsyncIteration  # say, anext() on an exhausted source
        return item

    got: list[int] = []
    async with make_manager(worker_count=1) as manager:
        with pytest.raises(RuntimeError, match="StopAsyncIteration") as caught:
            async for value in manager.map(step, range(5), ordered=ordered):
                got.append(value)
        assert isinstance(caught.value.__cause__, StopAsyncIteration)
    assert got == [0, 1]


async def test_1_stop_async_iteration_reaches_an_awaiting_caller_as_runtime_error(
    make_manager: Make,
) -> None:
    """await queue_task(fn) of a task raising StopAsyncIteration raises RuntimeError."""

    async def exhausted(resource: Resource) -> None:
        raise StopAsyncIteration

    async with make_manager() as manager:
        with pytest.raises(RuntimeError, match="task raised StopAsyncIteration"):
            await manager.queue_task(exhausted)


# 2 -------------------------------------------------------------------------------


async def test_2_stray_cancel_from_on_create_during_replacement_keeps_the_worker(
    make_manager: Make, tracker: Tracker
) -> None:
    """A stray CancelledError from on_create while replacing: retried, the worker stays."""
    strays = [1]

    async def create() -> Resource:
        if tracker.created and strays:  # not at entry: during the replacement
            strays.pop()
            await stray_cancel()
        return await tracker.create()

    async with make_manager(
        worker_count=1,
        resource_pool_size=0,
        on_create=create,
        check_health=unhealthy_if_broken,
        max_retries=0,
    ) as manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(breaks)
        assert await manager.queue_task(use(7)) == 7  # a worker is there to run it
        assert manager.stats().active_workers == 1
    assert strays == []


async def test_2_stray_cancel_from_on_create_at_entry_is_resource_creation_error(
    tracker: Tracker,
) -> None:
    """A stray CancelledError from an on_create at entry fails entry, destroying the rest."""
    calls = 0

    async def create() -> Resource:
        nonlocal calls
        calls += 1
        if calls == 2:
            await stray_cancel()
        return await tracker.create()

    manager: TaskManager[Resource, Any] = TaskManager(
        Config(on_create=create, on_destroy=tracker.destroy, worker_count=2, burst_interval=None)
    )
    with pytest.raises(ResourceCreationError, match="failed to initialize") as caught:
        async with manager:
            pass
    assert isinstance(caught.value.__cause__, asyncio.CancelledError)
    assert manager.state == "stopped"
    tracker.assert_balanced()


async def test_2_stray_cancel_from_a_pool_on_destroy_lets_stop_return(tracker: Tracker) -> None:
    """A pool resource whose on_destroy raises a stray CancelledError: stop() still returns."""

    async def destroy(resource: Resource) -> None:
        await tracker.destroy(resource)
        await stray_cancel()

    manager: TaskManager[Resource, Any] = TaskManager(
        Config(on_create=tracker.create, on_destroy=destroy, worker_count=2, burst_interval=None)
    )
    async with asyncio.timeout(HANG):
        async with manager:
            assert manager.stats().available_resources == 2
    tracker.assert_balanced()


async def test_2_stray_cancel_from_a_replaced_on_destroy_keeps_the_worker(
    make_manager: Make, tracker: Tracker
) -> None:
    """A replaced resource's on_destroy raising a stray CancelledError: the worker stays."""

    async def destroy(resource: Resource) -> None:
        await tracker.destroy(resource)
        await stray_cancel()

    async with make_manager(
        worker_count=1,
        resource_pool_size=0,
        on_destroy=destroy,
        check_health=unhealthy_if_broken,
        max_retries=0,
    ) as manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(breaks)
        async with asyncio.timeout(HANG):
            assert await manager.queue_task(use(3)) == 3
    tracker.assert_balanced()


# 3 -------------------------------------------------------------------------------


async def test_3_task_cancelling_itself_fails_only_itself(make_manager: Make) -> None:
    """A task cancelling its own asyncio task fails with that cancellation; the worker stays."""

    async def cancels_itself(resource: Resource) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    async with make_manager(worker_count=1) as manager:
        future = manager.submit(cancels_itself)
        await asyncio.wait([future])
        error = future.exception()
        assert isinstance(error, asyncio.CancelledError), error
        assert not isinstance(error, ManagerStoppedError)
        assert manager.state == "running"
        async with asyncio.timeout(HANG):
            assert await manager.queue_task(use(1)) == 1


async def test_3_task_turning_its_cancel_into_timeout_does_not_poison_the_worker(
    make_manager: Make,
) -> None:
    """A task that turns its own cancel into TimeoutError leaves no cancel pending for the next."""

    async def times_out(resource: Resource) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise TimeoutError("gave up") from None  # and no uncancel()

    async def task_group_failure(resource: Resource) -> int | None:
        async def fail() -> None:
            raise ValueError("child")

        task = asyncio.current_task()
        assert task is not None
        pending = task.cancelling()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(fail())
                await asyncio.sleep(1)
        except ExceptionGroup as group_error:  # the group reports its child's error
            return pending if group_error.subgroup(ValueError) is not None else None
        return None

    async with make_manager(worker_count=1) as manager:
        with pytest.raises(TimeoutError, match="gave up"):
            await manager.queue_task(times_out)
        async with asyncio.timeout(HANG):
            assert await manager.queue_task(task_group_failure) == 0


# 4 -------------------------------------------------------------------------------


def _cancel_every_other_task() -> int:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    return len(others)


async def test_4_cancelling_every_task_right_after_entry_then_stop_destroys_everything(
    make_manager: Make, tracker: Tracker
) -> None:
    """'Cancel every task' just after entry: workers come back, stop() returns, nothing leaks."""
    manager = make_manager(worker_count=4, resource_pool_size=0)
    async with asyncio.timeout(HANG):
        async with manager:
            assert _cancel_every_other_task() >= 4  # the workers, before their first step
            await settle()
            assert await manager.queue_task(use(9)) == 9
    assert manager.state == "stopped"
    assert tracker.alive == 0
    tracker.assert_balanced()


async def test_4_cancelling_every_task_with_busy_burst_workers_then_leaving(
    make_manager: Make, tracker: Tracker
) -> None:
    """'Cancel every task' while burst workers are busy: leaving async with still returns."""
    gate = asyncio.Event()
    manager = make_manager(worker_count=1, max_worker_count=3, burst_interval=0.01)
    async with asyncio.timeout(HANG):
        async with manager:
            futures = [manager.submit(use(i, gate=gate)) for i in range(6)]
            await wait_until(lambda: manager.stats().burst_workers >= 1, rounds=100_000)
            _cancel_every_other_task()
            gate.set()
            await asyncio.wait(futures)
    assert manager.state == "stopped"
    tracker.assert_balanced()


# 5 -------------------------------------------------------------------------------


async def test_5_stop_inside_a_run_task_function_is_refused(make_manager: Make) -> None:
    """Awaiting stop() inside a run_task function raises instead of deadlocking."""

    async def stops(resource: Resource) -> None:
        await manager.stop()

    async with make_manager() as manager:
        async with asyncio.timeout(HANG):
            with pytest.raises(RuntimeError, match="would wait for itself"):
                await manager.run_task(stops)
        assert manager.state == "running"


# 6 -------------------------------------------------------------------------------


async def test_6_run_task_only_load_keeps_memory_bounded(make_manager: Make) -> None:
    """30,000 run_task calls with bursting off: the collector's buffers stay bounded.

    Unbounded, they grew by about 131 bytes a call (3.9 MB here); bounded, by at most
    one batch of logged events (about 0.5 MB).
    """

    async def nothing(resource: Resource) -> None:
        return None

    async with make_manager(worker_count=1, resource_pool_size=1) as manager:
        for _ in range(2_000):  # warm up
            await manager.run_task(nothing)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(30_000):
                await manager.run_task(nothing)
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert manager.metrics().total_tasks_arrived == 32_000
    assert after - before < 1_000_000, f"grew by {after - before} bytes"


# 7 -------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
async def test_7_check_health_raising_base_exception_is_contained(
    make_manager: Make, tracker: Tracker, error: type[BaseException]
) -> None:
    """check_health raising a BaseException: logged, treated as healthy, nothing else lost."""

    def check(exc: BaseException) -> bool:
        raise error

    async with make_manager(worker_count=1, check_health=check) as manager:
        with pytest.raises(Broken):
            await manager.queue_task(breaks)
        with pytest.raises(Broken):
            await manager.run_task(breaks)
        assert await manager.queue_task(use(2)) == 2
        await manager.kill()
    tracker.assert_balanced()


@pytest.mark.parametrize("error", [KeyboardInterrupt, asyncio.CancelledError])
async def test_7_retry_backoff_raising_base_exception_retries_at_once(
    make_manager: Make, error: type[BaseException]
) -> None:
    """retry_backoff raising a BaseException: logged, the task is re-run at once."""
    runs = 0

    async def flaky(resource: Resource) -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise Broken("once")
        return "ok"

    def backoff(attempt: int) -> float:
        raise error

    async with make_manager(task_retries=1, retry_backoff=lambda attempt: 0.0) as manager:
        assert await manager.submit(flaky, backoff=backoff) == "ok"


# 8 -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_8_stop_or_kill_from_another_thread(
    make_manager: Make, tracker: Tracker, how: str
) -> None:
    """stop()/kill() awaited in another thread's event loop shut the manager down."""
    manager = make_manager()
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(getattr(manager, how)())
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    async with asyncio.timeout(HANG):
        async with manager:
            assert await manager.queue_task(use(1)) == 1
            thread = threading.Thread(target=in_thread)
            thread.start()
            await wait_until(lambda: not thread.is_alive(), rounds=10_000_000)
            thread.join()
            assert errors == []
            assert manager.state == "stopped"
    tracker.assert_balanced()


# 9 -------------------------------------------------------------------------------


class RaisesOnce(logging.Logger):
    """A logger whose warning() and error() raise the first time."""

    def __init__(self) -> None:
        super().__init__("raises-once")
        self.raised = 0

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._raise_once()

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._raise_once()

    def _raise_once(self) -> None:
        if self.raised < 2:
            self.raised += 1
            raise RuntimeError("logger broke")


async def test_9_a_logger_raising_does_not_cost_a_worker(
    make_manager: Make, tracker: Tracker, capsys: pytest.CaptureFixture[str]
) -> None:
    """A logger whose warning() raises: the worker survives, the message goes to stderr."""
    logger = RaisesOnce()
    async with make_manager(
        worker_count=1, check_health=unhealthy_if_broken, max_retries=0, logger=logger
    ) as manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(breaks)  # "replacing a worker ..." -> the logger raises
        async with asyncio.timeout(HANG):
            assert await manager.queue_task(use(4)) == 4
    assert logger.raised >= 1
    assert "logger broke" in capsys.readouterr().err
    tracker.assert_balanced()


class Flaky:
    """The default collector, except that record_completion raises once."""

    def __init__(self) -> None:
        self.inner = new_collector()
        self.raised = False

    def record_arrival(self) -> None:
        self.inner.record_arrival()

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        if not self.raised:
            self.raised = True
            raise KeyboardInterrupt  # even a BaseException
        self.inner.record_completion(stamps)

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        self.inner.record_failure(stamps)

    def record_retry(self) -> None:
        self.inner.record_retry()

    def metrics(self) -> TaskMetrics:
        return self.inner.metrics()


async def test_9_a_collector_raising_does_not_cost_a_worker(
    make_manager: Make, tracker: Tracker
) -> None:
    """A collector whose record_completion raises once loses one event, not a worker."""
    collector = Flaky()
    async with make_manager(worker_count=1, collector=collector) as manager:
        assert await manager.queue_task(use(1)) == 1
        async with asyncio.timeout(HANG):
            assert await manager.queue_task(use(2)) == 2
        assert manager.metrics().total_tasks_completed == 1
    assert collector.raised
    tracker.assert_balanced()


# 10 ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop_timeout", "kill"])
async def test_10_shutdown_during_a_hanging_on_create_returns(tracker: Tracker, how: str) -> None:
    """stop(timeout) or kill() while __aenter__ waits on a hanging on_create both return."""
    never = asyncio.Event()

    async def create() -> Resource:
        resource = await tracker.create()
        if resource.ident == 1:
            try:
                await never.wait()  # hangs, until cancelled
            finally:
                await tracker.destroy(resource)
        return resource

    manager: TaskManager[Resource, Any] = TaskManager(
        Config(on_create=create, on_destroy=tracker.destroy, worker_count=2, burst_interval=None)
    )
    entering = asyncio.create_task(manager.__aenter__())
    await wait_until(lambda: len(tracker.created) == 4 and tracker.creating == 0)
    async with asyncio.timeout(HANG):
        if how == "kill":
            await manager.kill()
        else:
            await manager.stop(timeout=0.01)
        await asyncio.wait([entering])
    assert manager.state == "stopped"
    assert entering.exception() is None  # entry ends with a stopped manager
    with pytest.raises(ManagerStoppedError):
        await manager.queue_task(use())
    tracker.assert_balanced()


# 11 ------------------------------------------------------------------------------


def test_11_async_check_health_is_refused(tracker: Tracker) -> None:
    """An async def check_health is a ConfigError naming the field, not a silent no-op."""

    async def check(exc: BaseException) -> bool:
        return False

    with pytest.raises(ConfigError, match="check_health must be a plain function"):
        TaskManager(
            Config(
                on_create=tracker.create,
                on_destroy=tracker.destroy,
                worker_count=1,
                check_health=check,  # type: ignore[arg-type]
            )
        )


async def test_11_check_health_returning_a_coroutine_is_closed_and_healthy(
    make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """A callable returning a coroutine: it is closed (no warning), the error counts healthy."""

    async def verdict(exc: BaseException) -> bool:
        return False

    class Check:
        def __call__(self, exc: BaseException) -> Awaitable[bool]:
            return verdict(exc)

    async with make_manager(worker_count=1, check_health=Check()) as manager:
        with pytest.raises(Broken):
            await manager.queue_task(breaks)
    assert "not a bool" in caplog.text


# 12 ------------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
async def test_12_a_map_iterator_refuses_a_second_consumer(
    make_manager: Make, ordered: bool
) -> None:
    """Two tasks awaiting one map() iterator at once: the second gets a clear RuntimeError."""
    gate = asyncio.Event()

    async def held(resource: Resource, item: int) -> int:
        await gate.wait()
        return item

    async with make_manager(worker_count=1) as manager:
        results = manager.map(held, range(3), ordered=ordered)
        first = asyncio.create_task(anext(results))
        await settle()
        with pytest.raises(RuntimeError, match="already being awaited"):
            await anext(results)
        gate.set()
        assert await first == 0
        assert [x async for x in results] == [1, 2]


# 13 ------------------------------------------------------------------------------


async def test_13_metrics_from_another_thread_lose_no_arrivals(make_manager: Make) -> None:
    """A thread reading metrics() during a flood of submissions: every arrival is counted."""
    stop = threading.Event()
    reads: list[int] = []

    async with make_manager(worker_count=4) as manager:

        def monitor() -> None:
            while not stop.is_set():
                reads.append(manager.metrics().total_tasks_arrived)

        thread = threading.Thread(target=monitor)
        thread.start()
        try:
            futures = []
            for _ in range(20):
                futures += [manager.submit(use()) for _ in range(5_000)]
                await asyncio.sleep(0)  # let the monitor's reads in between
            await asyncio.gather(*futures)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
        assert manager.metrics().total_tasks_arrived == 100_000
        assert manager.stats().queued_tasks == 0
    assert reads, "the monitor never read"
