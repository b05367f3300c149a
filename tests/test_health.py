"""Unhealthy failures: worker replacement, priority re-runs, max_retries, *_once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from tasker_aio import MaxRetriesExceededError, TaskManager

from .helpers import Resource, Tracker, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]


class Broken(Exception):
    """The resource is broken: check_health says unhealthy."""


def health(exc: BaseException) -> bool:
    return not isinstance(exc, Broken)


def failing(runs: list[int], times: int, result: Any = "ok") -> Callable[[Resource], Any]:
    """A task that breaks its resource on its first ``times`` runs."""

    async def task(resource: Resource) -> Any:
        runs.append(resource.ident)
        if len(runs) <= times:
            raise Broken(f"run {len(runs)}")
        return result

    return task


async def test_always_unhealthy_answers_after_max_retries_plus_one(
    make_manager: Make, tracker: Tracker
) -> None:
    """On one worker, an always-unhealthy task runs max_retries+1 times, then raises."""
    runs: list[int] = []
    async with make_manager(
        worker_count=1, resource_pool_size=0, max_retries=2, check_health=health
    ) as manager:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await manager.queue_task(failing(runs, times=99))
        await wait_until(lambda: manager.stats().active_workers == 1)  # replaced
        assert await manager.queue_task(use(1)) == 1
    assert len(runs) == 3
    assert len(set(runs)) == 3  # each run had a fresh resource
    error = caught.value
    assert str(error) == "max retries exceeded: run 3"
    assert [str(e) for e in error.errors] == ["run 1", "run 2", "run 3"]
    assert error.__cause__ is error.errors[-1]
    assert len(tracker.created) == 4  # the original + three replacements


async def test_unhealthy_then_success_returns_value(make_manager: Make) -> None:
    """A task that breaks one resource and succeeds on the next returns its value."""
    runs: list[int] = []
    async with make_manager(worker_count=1, check_health=health) as manager:
        assert await manager.queue_task(failing(runs, times=1, result=10)) == 10
    assert len(runs) == 2 and runs[0] != runs[1]


async def test_worker_count_restored(make_manager: Make, tracker: Tracker) -> None:
    """After many unhealthy failures the manager still has worker_count ready workers."""
    async with make_manager(worker_count=3, max_retries=0, check_health=health) as manager:

        async def crash(resource: Resource) -> None:
            raise Broken("x")

        results = await asyncio.gather(
            *(manager.queue_task(crash) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, MaxRetriesExceededError) for r in results)
        await wait_until(lambda: manager.stats().active_workers == 3)
        assert manager.stats().base_workers == 3
        values = await asyncio.gather(*(manager.queue_task(use(i)) for i in range(6)))
        assert values == list(range(6))


async def test_max_retries_zero_means_one_run(make_manager: Make) -> None:
    """max_retries=0 never re-runs; the unhealthy failure is a MaxRetriesExceededError."""
    runs: list[int] = []
    async with make_manager(worker_count=1, max_retries=0, check_health=health) as manager:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await manager.queue_task(failing(runs, times=99))
    assert len(runs) == 1
    assert len(caught.value.errors) == 1


@pytest.mark.parametrize("method", ["queue_task_once", "queue_task_with_priority_once"])
async def test_once_never_reruns_but_replaces(
    make_manager: Make, tracker: Tracker, method: str
) -> None:
    """*_once tasks run at most once; the unhealthy worker is still replaced."""
    runs: list[int] = []
    async with make_manager(worker_count=1, resource_pool_size=0, check_health=health) as m:
        with pytest.raises(MaxRetriesExceededError):
            await getattr(m, method)(failing(runs, times=99))
        await wait_until(lambda: m.stats().active_workers == 1)
        assert len(tracker.created) == 2
    assert len(runs) == 1


async def test_unhealthy_rerun_goes_to_priority_queue(make_manager: Make) -> None:
    """An unhealthy re-run goes to the end of the priority queue, ahead of main tasks."""
    order: list[str] = []
    gate = asyncio.Event()

    async def flaky(resource: Resource) -> str:
        order.append("flaky")
        if order.count("flaky") == 1:
            await gate.wait()
            raise Broken("once")
        return "flaky"

    async def plain(resource: Resource, name: str) -> str:
        order.append(name)
        return name

    async with make_manager(worker_count=1, resource_pool_size=0, check_health=health) as m:
        first = m.submit(flaky)
        await asyncio.sleep(0)
        mains = [m.submit(partial(plain, name=f"m{i}")) for i in range(2)]
        prio = m.submit(lambda r: plain(r, "p"), priority=True)
        gate.set()
        await asyncio.gather(first, prio, *mains)
    assert order == ["flaky", "p", "flaky", "m0", "m1"]


async def test_replacement_create_failures_are_retried(
    make_manager: Make, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """If on_create fails while replacing, it is retried (and logged) until it works."""
    runs: list[int] = []
    with caplog.at_level(logging.WARNING, logger="tasker_aio"):
        async with make_manager(
            worker_count=1, resource_pool_size=0, max_retries=1, check_health=health
        ) as manager:
            tracker.fail_creates = 2
            assert await manager.queue_task(failing(runs, times=1, result=5)) == 5
            assert manager.stats().active_workers == 1
    assert tracker.fail_creates == 0
    assert sum("on_create failed" in r.getMessage() for r in caplog.records) == 2
    assert any("replacing a worker" in r.getMessage() for r in caplog.records)


async def test_check_health_errors_count_as_healthy(
    make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """A check_health that raises is logged; the error counts as healthy."""

    def bad_check(exc: BaseException) -> bool:
        raise RuntimeError("check bug")

    async def fail(resource: Resource) -> None:
        raise ValueError("v")

    with caplog.at_level(logging.ERROR, logger="tasker_aio"):
        async with make_manager(worker_count=1, check_health=bad_check) as manager:
            with pytest.raises(ValueError, match="v"):
                await manager.queue_task(fail)
    assert any("check bug" in r.getMessage() for r in caplog.records)


async def test_separate_budgets(make_manager: Make) -> None:
    """Healthy retries and unhealthy retries are counted separately."""
    seen: list[str] = []

    async def mixed(resource: Resource) -> str:
        seen.append("run")
        n = len(seen)
        if n in (1, 3):
            raise Broken(f"b{n}")
        if n in (2, 4):
            raise ValueError(f"h{n}")
        return "done"

    async with make_manager(
        worker_count=1, max_retries=2, task_retries=2, retry_backoff=lambda a: 0.0,
        check_health=health,
    ) as manager:  # fmt: skip
        assert await manager.queue_task(mixed) == "done"
        assert manager.metrics().total_tasks_retried == 4
    assert len(seen) == 5
