"""One behaviour suite, run on local resources and on Ray actors (the ``harness`` fixture).

Every test body is backend-blind: tasks await methods of :class:`~.workers.Worker`,
which is a local object or a Ray actor; a Worker "breaks" by raising ``Broken`` locally
(unhealthy by the local check_health) or by its actor process exiting (unhealthy by the
Ray backend's built-in check). After each test the harness checks that every resource
was destroyed exactly once and, for actors, that Ray reports each one dead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, MaxRetriesExceededError

from .backends import Harness, eventually

pytestmark = pytest.mark.timeout(60)


def no_backoff(attempt: int) -> float:
    return 0.0


def step(tag: str, gate: str | None = None) -> Callable[[Any], Awaitable[Any]]:
    """A task running ``Worker.step(tag, gate)``."""
    return lambda worker: worker.step(tag, gate=gate)


async def test_priority_tasks_run_first(harness: Harness) -> None:
    """With one worker busy, queued priority tasks run before earlier main-queue tasks."""
    async with harness.make(max_worker_count=1) as manager:
        first = manager.queue_task_async(lambda w: w.step("first", gate="go"))
        await harness.until("first")
        later = [
            manager.queue_task_async(lambda w: w.step("m1")),
            manager.queue_task_with_priority_async(lambda w: w.step("p1")),
            manager.queue_task_async(lambda w: w.step("m2")),
            manager.queue_task_with_priority_async(lambda w: w.step("p2")),
        ]
        await harness.board.open("go")
        assert await asyncio.gather(first, *later) == ["first", "m1", "p1", "m2", "p2"]
        assert await harness.task_notes() == ["first", "p1", "p2", "m1", "m2"]


async def test_unhealthy_failure_replaces_the_resource(harness: Harness) -> None:
    """A task that breaks its resource re-runs on a fresh one and its caller gets the value."""
    async with harness.make(max_retries=1) as manager:
        before = await manager.queue_task(lambda w: w.whoami())
        after = await manager.queue_task(lambda w: w.break_("crash", times=1))
        assert after != before
        assert await manager.queue_task(lambda w: w.whoami()) == after
        assert len(harness.created) == 2
        assert len(harness.destroyed) == 1


async def test_max_retries_bounds_unhealthy_reruns(harness: Harness) -> None:
    """max_retries=1: two unhealthy runs, then MaxRetriesExceededError holding both errors."""
    async with harness.make(max_retries=1) as manager:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await manager.queue_task(lambda w: w.break_("crash", times=5))
        assert len(caught.value.errors) == 2
        assert all(harness.backend.is_break(error) for error in caught.value.errors)
        assert await manager.queue_task(lambda w: w.echo("still serving")) == "still serving"
    assert len(harness.created) == 3


async def test_task_retries_rerun_healthy_failures_on_the_same_resource(
    harness: Harness,
) -> None:
    """task_retries re-runs ordinary failures on the same resource; no replacement."""
    async with harness.make(task_retries=2, retry_backoff=no_backoff) as manager:
        assert await manager.queue_task(lambda w: w.flaky("flaky", failures=2)) == 3
    assert len(harness.created) == 1


async def test_task_retries_exhausted_keeps_each_original_error(harness: Harness) -> None:
    """The last healthy failure reports every attempt's error with its original type."""
    async with harness.make(task_retries=1, retry_backoff=no_backoff) as manager:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await manager.queue_task(lambda w: w.flaky("flaky", failures=5))
        assert [type(error) for error in caught.value.errors] == [ValueError, ValueError]
        assert [str(error) for error in caught.value.errors] == [
            "flaky attempt 1",
            "flaky attempt 2",
        ]
        with pytest.raises(ValueError, match="once") as once:
            await manager.submit(lambda w: w.flaky("once", failures=1), retries=0)
        assert type(once.value) is ValueError
        assert str(once.value) == "once attempt 1"


async def test_once_never_reruns(harness: Harness) -> None:
    """A once task is not re-run after either kind of failure; a broken resource is replaced."""
    async with harness.make(max_retries=3, task_retries=3, retry_backoff=no_backoff) as manager:
        with pytest.raises(ValueError, match="attempt 1"):
            await manager.queue_task_once(lambda w: w.flaky("flaky", failures=1))
        with pytest.raises(MaxRetriesExceededError) as caught:
            await manager.queue_task_once(lambda w: w.break_("crash", times=1))
        assert len(caught.value.errors) == 1
        assert await manager.queue_task(lambda w: w.echo(1)) == 1
        assert await harness.task_notes() == ["flaky", "crash"]
    assert len(harness.created) == 2


async def test_caller_cancellation_cancels_the_running_task(harness: Harness) -> None:
    """Cancelling the caller cancels the task where it runs; the resource then serves on."""
    async with harness.make(max_worker_count=1) as manager:
        resource = await manager.queue_task(lambda w: w.whoami())
        caller = asyncio.create_task(manager.queue_task(lambda w: w.step("held", gate="never")))
        await harness.until("held")
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        # The same resource saw the cancellation where it ran, then serves the next task.
        assert await manager.queue_task(lambda w: w.cancellations()) == ["held"]
        assert await manager.queue_task(lambda w: w.whoami()) == resource
    assert len(harness.created) == 1


async def test_cancelling_a_queued_task_discards_it(harness: Harness) -> None:
    """A caller cancelled while its task waits in the queue: the task never runs."""
    async with harness.make(max_worker_count=1) as manager:
        first = manager.queue_task_async(lambda w: w.step("first", gate="go"))
        await harness.until("first")
        queued = manager.queue_task_async(lambda w: w.step("never ran"))
        queued.cancel()
        await harness.board.open("go")
        assert await first == "first"
        assert await manager.queue_task(lambda w: w.step("after")) == "after"
        assert await harness.task_notes() == ["first", "after"]


async def test_stop_finishes_running_and_queued_tasks(harness: Harness) -> None:
    """stop() lets running and queued tasks finish, then destroys every resource."""
    manager = harness.make(worker_count=2)
    async with manager:
        results = [manager.queue_task_async(step(f"t{i}", gate="go")) for i in range(5)]
        await harness.until("t1")
        stopping = asyncio.create_task(manager.stop())
        await eventually(lambda: manager.state == "stopping")
        with pytest.raises(ManagerStoppedError):
            await manager.queue_task(lambda w: w.echo(0))
        await harness.board.open("go")
        await stopping
        assert [future.result() for future in results] == [f"t{i}" for i in range(5)]
    assert harness.alive == 0
    await harness.assert_all_released()


async def test_kill_answers_every_caller_and_drops_queued_tasks(harness: Harness) -> None:
    """kill() cancels running tasks, drops queued ones, answers every caller, frees all."""
    manager = harness.make(worker_count=2)
    async with manager:
        futures = [manager.queue_task_async(step(f"t{i}", gate="never")) for i in range(4)]
        await harness.until("t0")
        await harness.until("t1")
        await manager.kill()
        for future in futures:
            with pytest.raises(ManagerStoppedError, match="killed"):
                future.result()
    assert sorted(await harness.task_notes()) == ["t0", "t1"]  # t2 and t3 never ran
    assert harness.alive == 0
    await harness.assert_all_released()


async def test_bursts_up_under_load_and_back_down(harness: Harness) -> None:
    """A backlog adds burst workers up to max_worker_count; idle ones are retired after."""
    manager = harness.make(worker_count=1, max_worker_count=3, burst_interval=0.05)
    async with manager:
        futures = [manager.queue_task_async(step("held", gate="go")) for _ in range(6)]
        await harness.until("held", 3)  # three tasks held at once: three workers
        assert manager.stats().burst_workers == 2
        await harness.board.open("go")
        assert await asyncio.gather(*futures) == ["held"] * 6
        await eventually(lambda: manager.stats().burst_workers == 0)
        assert manager.stats().active_workers == 1
    assert len(harness.created) == 3


async def test_run_task_uses_the_pool_or_a_temporary_resource(harness: Harness) -> None:
    """run_task takes a pooled resource when there is one, else a temporary it destroys."""
    async with harness.make(resource_pool_size=1) as manager:
        pooled = await manager.run_task(lambda w: w.whoami())
        assert await manager.run_task(lambda w: w.whoami()) == pooled
        assert manager.stats().available_resources == 1
    assert len(harness.created) == 2  # the worker's and the pool's

    async with harness.make(resource_pool_size=0) as manager:
        created = len(harness.created)
        assert await manager.run_task(lambda w: w.echo("temporary")) == "temporary"
        assert len(harness.created) == created + 1
        assert harness.created[-1] in harness.destroyed


async def test_map_yields_results_in_order(harness: Harness) -> None:
    """map() runs fn(resource, item) for each item and yields results in input order."""
    async with harness.make(worker_count=2) as manager:
        results: list[Any] = [x async for x in manager.map(lambda w, i: w.echo(i * i), range(8))]
    assert results == [i * i for i in range(8)]


async def test_map_raises_the_first_error_at_its_position(harness: Harness) -> None:
    """map() yields results up to the failed item, then raises its original error."""
    async with harness.make(worker_count=2) as manager:
        seen: list[Any] = []

        async def item(w: Any, i: int) -> Any:
            if i == 2:
                return await w.flaky(f"item{i}", failures=1)
            return await w.echo(i)

        with pytest.raises(ValueError, match="item2 attempt 1"):
            async for value in manager.map(item, range(4)):
                seen.append(value)
    assert seen == [0, 1]
