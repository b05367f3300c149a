"""Healthy retries: budgets, backoff that holds no worker, the error bundle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import MaxRetriesExceededError, TaskManager

from .helpers import Resource, use

Make = Callable[..., TaskManager[Any, Any]]


def flaky(attempts: list[int], fail_times: int) -> Callable[[Resource], Any]:
    async def task(resource: Resource) -> str:
        attempts.append(1)
        if len(attempts) <= fail_times:
            raise ValueError(f"attempt {len(attempts)}")
        return "ok"

    return task


async def test_task_retries_rerun_healthy_failures(make_manager: Make) -> None:
    """Config.task_retries re-runs ordinary failures; the caller sees the final value."""
    attempts: list[int] = []
    async with make_manager(task_retries=2, retry_backoff=lambda a: 0.0) as manager:
        assert await manager.queue_task(flaky(attempts, fail_times=2)) == "ok"
        metrics = manager.metrics()
    assert len(attempts) == 3
    assert metrics.total_tasks_retried == 2
    assert metrics.total_tasks_completed == 1 and metrics.total_tasks_arrived == 1


async def test_exhausted_retries_bundle_every_error(make_manager: Make) -> None:
    """When retries run out the caller gets MaxRetriesExceededError with every attempt."""
    attempts: list[int] = []
    async with make_manager() as manager:
        future = manager.submit(flaky(attempts, 99), retries=2, backoff=lambda a: 0.0)
        with pytest.raises(MaxRetriesExceededError) as caught:
            await future
    assert [str(e) for e in caught.value.errors] == ["attempt 1", "attempt 2", "attempt 3"]
    assert caught.value.__cause__ is caught.value.errors[-1]
    assert str(caught.value) == "max retries exceeded: attempt 3"


async def test_default_is_no_retry(make_manager: Make) -> None:
    """task_retries defaults to 0: a healthy failure is raised as is after one run."""
    attempts: list[int] = []
    async with make_manager() as manager:
        with pytest.raises(ValueError, match="attempt 1"):
            await manager.queue_task(flaky(attempts, 99))
    assert len(attempts) == 1


async def test_backoff_holds_no_worker(make_manager: Make) -> None:
    """While a task waits out its backoff, another task uses the only worker."""
    order: list[str] = []
    release = asyncio.Event()
    other_done = asyncio.Event()

    async def failing_once(resource: Resource) -> str:
        order.append("retry-task")
        if order.count("retry-task") == 1:
            raise ValueError("first")
        return "second run"

    def backoff(attempt: int) -> float:
        return 3600.0  # only shutdown or the re-queue below ends this wait

    async def other(resource: Resource) -> str:
        order.append("other")
        other_done.set()
        await release.wait()
        return "other"

    async with make_manager(worker_count=1, resource_pool_size=0) as manager:
        retried = manager.submit(failing_once, retries=1, backoff=backoff)
        await asyncio.sleep(0)
        second = manager.submit(other)
        await other_done.wait()
        assert manager.stats().running_tasks == 1
        assert not retried.done()
        release.set()
        assert await second == "other"
        # stop() re-queues the waiting task at once instead of after an hour.
    assert await retried == "second run"
    assert order == ["retry-task", "other", "retry-task"]


async def test_backoff_receives_attempt_numbers(make_manager: Make) -> None:
    """backoff(attempt) is called with 1 for the first re-run, 2 for the second, ..."""
    seen: list[int] = []

    def backoff(attempt: int) -> float:
        seen.append(attempt)
        return 0.0

    async with make_manager() as manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.submit(flaky([], 99), retries=3, backoff=backoff)
    assert seen == [1, 2, 3]


async def test_backoff_delay_is_waited(make_manager: Make) -> None:
    """A positive backoff delays the re-run through the loop's timer, not a worker."""
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def fail_then_ok(resource: Resource) -> str:
        attempts.append(loop.time())
        if len(attempts) == 1:
            raise ValueError("x")
        return "ok"

    async with make_manager() as manager:
        assert await manager.submit(fail_then_ok, retries=1, backoff=lambda a: 0.02) == "ok"
    assert attempts[1] - attempts[0] >= 0.015


async def test_once_overrides_retries(make_manager: Make) -> None:
    """once=True means no re-run even with retries configured."""
    attempts: list[int] = []
    async with make_manager(task_retries=5, retry_backoff=lambda a: 0.0) as manager:
        with pytest.raises(ValueError, match="attempt 1"):
            await manager.queue_task_once(flaky(attempts, 99))
    assert len(attempts) == 1


async def test_backoff_errors_retry_at_once(make_manager: Make) -> None:
    """A backoff function that raises is logged and the re-run is queued at once."""

    def broken(attempt: int) -> float:
        raise ZeroDivisionError

    async with make_manager() as manager:
        assert await manager.submit(flaky([], 1), retries=1, backoff=broken) == "ok"
        assert await manager.queue_task(use(1)) == 1
