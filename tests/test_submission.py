"""The submission methods: awaiting, callback and future styles over one core."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, TaskManager

from .helpers import Resource, settle, use

Make = Callable[..., TaskManager[Any, Any]]

AWAITING = ["queue_task", "queue_task_with_priority", "queue_task_once",
            "queue_task_with_priority_once"]  # fmt: skip
FUTURES = [f"{name}_async" for name in AWAITING]
CALLBACKS = [f"{name}_with_callback" for name in AWAITING]


@pytest.mark.parametrize("name", AWAITING)
async def test_awaiting_forms_return_the_value(make_manager: Make, name: str) -> None:
    """Each awaiting method returns the task's value."""
    async with make_manager() as manager:
        assert await getattr(manager, name)(use("v")) == "v"


@pytest.mark.parametrize("name", FUTURES)
async def test_future_forms_return_futures(make_manager: Make, name: str) -> None:
    """Each *_async method returns an asyncio.Future at once, resolved to the value."""
    async with make_manager() as manager:
        future = getattr(manager, name)(use(3))
        assert isinstance(future, asyncio.Future)
        assert await future == 3


@pytest.mark.parametrize("name", CALLBACKS)
async def test_callback_forms_call_back(make_manager: Make, name: str) -> None:
    """Each *_with_callback method returns None and calls back (value, None)."""
    got: list[tuple[Any, Any]] = []
    done = asyncio.Event()

    def callback(result: Any, error: BaseException | None) -> None:
        got.append((result, error))
        done.set()

    async with make_manager() as manager:
        assert getattr(manager, name)(use(9), callback) is None
        await done.wait()
    assert got == [(9, None)]


async def test_callback_gets_the_error(make_manager: Make) -> None:
    """A failed task calls back (None, exc)."""
    got: list[tuple[Any, Any]] = []
    boom = ValueError("boom")

    async def fail(resource: Resource) -> None:
        raise boom

    async with make_manager() as manager:
        manager.queue_task_with_callback(fail, lambda r, e: got.append((r, e)))
    assert got == [(None, boom)]


async def test_async_callback_is_awaited(make_manager: Make) -> None:
    """A coroutine-function callback is awaited in the manager's task group."""
    finished = asyncio.Event()

    async def callback(result: Any, error: BaseException | None) -> None:
        await asyncio.sleep(0)
        assert result == 5 and error is None
        finished.set()

    async with make_manager() as manager:
        manager.queue_task_with_callback(use(5), callback)
        await finished.wait()


async def test_callback_errors_are_logged_and_contained(
    make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """Sync and async callbacks that raise are logged at error and harm nothing."""

    def bad_sync(result: Any, error: BaseException | None) -> None:
        raise RuntimeError("sync callback bug")

    async def bad_async(result: Any, error: BaseException | None) -> None:
        raise RuntimeError("async callback bug")

    with caplog.at_level(logging.ERROR, logger="tasker_aio"):
        async with make_manager() as manager:
            manager.queue_task_with_callback(use(1), bad_sync)
            manager.queue_task_with_callback(use(2), bad_async)
            assert await manager.queue_task(use(3)) == 3
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "sync callback bug" in messages and "async callback bug" in messages


async def test_task_exception_reaches_caller_unchanged(make_manager: Make) -> None:
    """A task that fails once (healthy, no retries) raises its own exception object."""
    boom = KeyError("k")

    async def fail(resource: Resource) -> None:
        raise boom

    async with make_manager() as manager:
        with pytest.raises(KeyError) as caught:
            await manager.queue_task(fail)
        assert caught.value is boom
        assert await manager.queue_task(use(1)) == 1  # the worker lives on


async def test_non_awaitable_result_fails_with_type_error(make_manager: Make) -> None:
    """A task function that returns a non-awaitable fails that task with TypeError."""
    async with make_manager() as manager:
        with pytest.raises(TypeError, match="not an awaitable"):
            await manager.queue_task(lambda resource: 42)  # type: ignore[arg-type,return-value]
        with pytest.raises(TypeError, match="not an awaitable"):
            await manager.run_task(lambda resource: 42)  # type: ignore[arg-type,return-value]
        assert await manager.queue_task(use(1)) == 1


async def test_lambda_returning_coroutine_works(make_manager: Make) -> None:
    """A lambda that returns a coroutine is a valid task."""
    async with make_manager() as manager:
        assert await manager.queue_task(lambda resource: asyncio.sleep(0, "ok")) == "ok"


async def test_bad_arguments_raise_at_once(make_manager: Make) -> None:
    """A non-callable fn/callback/backoff or bad retries raise naming the value."""
    async with make_manager() as manager:
        with pytest.raises(TypeError, match="fn must be callable, got 42"):
            manager.submit(42)  # type: ignore[arg-type,unused-awaitable]
        with pytest.raises(TypeError, match="fn must be callable"):
            await manager.queue_task(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callback must be callable, got 'x'"):
            manager.queue_task_with_callback(use(), "x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="retries must be an int >= 0, got -1"):
            manager.submit(use(), retries=-1)  # type: ignore[unused-awaitable]
        with pytest.raises(TypeError, match="backoff must be callable"):
            manager.submit(use(), backoff=1.0)  # type: ignore[arg-type,unused-awaitable]
        assert manager.stats().queued_tasks == 0
        assert manager.metrics().total_tasks_arrived == 0
        assert await manager.queue_task(use(1)) == 1


async def test_refusals_go_through_future_and_callback(make_manager: Make) -> None:
    """After stop, non-blocking forms deliver ManagerStoppedError, they don't raise."""
    got: list[BaseException | None] = []
    async with make_manager() as manager:
        pass
    future = manager.submit(use())
    manager.queue_task_with_callback(use(), lambda r, e: got.append(e))
    with pytest.raises(ManagerStoppedError, match="shutting down"):
        await future
    await settle()
    assert len(got) == 1 and isinstance(got[0], ManagerStoppedError)


async def test_awaiting_form_is_a_coroutine_for_create_task(make_manager: Make) -> None:
    """queue_task can be wrapped in create_task / TaskGroup like any coroutine."""
    async with make_manager() as manager, asyncio.TaskGroup() as group:
        tasks = [group.create_task(manager.queue_task(use(i))) for i in range(5)]
    assert [t.result() for t in tasks] == list(range(5))


async def test_base_exception_in_task_is_contained(make_manager: Make) -> None:
    """A task raising a BaseException subclass fails only itself."""

    class Fatal(BaseException):
        pass

    async def fatal(resource: Resource) -> None:
        raise Fatal()

    async with make_manager(worker_count=1) as manager:
        with pytest.raises(Fatal):
            await manager.queue_task(fatal)
        assert await manager.queue_task(use(1)) == 1


async def test_task_raising_cancelled_error_is_a_failure(make_manager: Make) -> None:
    """A CancelledError raised by the task's own code fails the task, not the worker."""

    async def inner_cancel(resource: Resource) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    async with make_manager(worker_count=1) as manager:
        future = manager.submit(inner_cancel)
        await asyncio.wait([future])
        assert future.cancelled() or isinstance(future.exception(), asyncio.CancelledError)
        assert await manager.queue_task(use(2)) == 2
        assert manager.stats().active_workers == 1


async def test_flood_of_trivial_tasks_lets_other_coroutines_run(make_manager: Make) -> None:
    """Workers yield during a flood of never-suspending tasks: a bystander runs mid-flood."""
    count = 20_000
    seen: list[int] = []

    async def trivial(resource: object) -> int:
        return 1

    async with make_manager(worker_count=4) as manager:
        futures = [manager.submit(trivial) for _ in range(count)]
        stop = asyncio.Event()

        async def bystander() -> None:
            while not stop.is_set():
                seen.append(manager.stats().queued_tasks)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(bystander())
        assert sum(await asyncio.gather(*futures)) == count
        stop.set()
        await watcher
    assert any(0 < queued < count for queued in seen), seen[:5]


async def test_answered_futures_need_no_garbage_collector(make_manager: Make) -> None:
    """A submitted task's future is freed by reference counting once answered (no cycle)."""
    import gc
    import weakref

    async def fail(resource: Resource) -> None:
        raise ValueError("x")

    gate = asyncio.Event()
    async with make_manager(worker_count=1, task_retries=0) as manager:
        blocker = manager.submit(use(gate=gate))
        futures = [manager.submit(use(1)), manager.submit(fail), manager.submit(use(2))]
        futures[2].cancel()  # cancelled while queued
        refs = [weakref.ref(f) for f in futures]
        gc.disable()
        try:
            gate.set()
            await blocker
            results = await asyncio.gather(*futures[:2], return_exceptions=True)
            assert results[0] == 1 and isinstance(results[1], ValueError)
            del futures, results
            await manager.queue_task(use())  # the worker's locals move on to this one
            assert [ref() for ref in refs] == [None, None, None]
        finally:
            gc.enable()
