"""Regression tests for bugs the fault harness found, each named after its bug.

Each was found by the fault harness (tests/faults.py) and the property test, and
failed until the library was fixed.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import Config, ManagerStoppedError, TaskManager

from .faults import FaultyResource, FaultyResources, ignore_cancellation
from .helpers import Resource, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]


async def test_map_leaving_early_leaves_no_unretrieved_exception(make_manager: Make) -> None:
    """Leaving map() at one failed item leaves no other item's exception unretrieved."""
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    second_failed = asyncio.Event()

    async def fail(resource: Resource, item: int) -> None:
        if item == 1:
            await second_failed.wait()  # item 2 has failed before the map raises item 1
        else:
            second_failed.set()
        raise ValueError(item)

    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: reports.append(str(context["message"])))
    try:
        async with make_manager(worker_count=2) as manager:
            with pytest.raises(ValueError, match="1"):
                async for _ in manager.map(fail, [1, 2]):
                    pass
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reports == []


async def test_run_task_cancelled_while_destroying_temporary_resource() -> None:
    """A run_task caller cancelled during its temporary resource's on_destroy: stop() returns."""
    resources = FaultyResources()
    resources.destroy_steps = 5  # a close that takes a few loop steps
    manager: TaskManager[FaultyResource, int] = TaskManager(
        Config(
            on_create=resources.create,
            on_destroy=resources.destroy,
            worker_count=1,
            resource_pool_size=0,  # run_task uses a temporary resource
            burst_interval=None,
        )
    )

    async def work(resource: FaultyResource) -> int:
        return 1

    await manager.__aenter__()
    try:
        caller = asyncio.create_task(manager.run_task(work))
        await wait_until(lambda: resources.created == 2 and resources.history is not None
                         and resources.history[-1].destroyed)  # fmt: skip
        caller.cancel()  # the caller gives up while its temporary resource closes
        await asyncio.gather(caller, return_exceptions=True)
        problems = list(resources.violations)  # on_destroy must not have been cancelled
        try:
            async with asyncio.timeout(2):  # detects the hang; not a speed requirement
                await manager.stop()
        except TimeoutError:
            problems.append("stop() did not return")
        assert problems == []
        assert resources.problems(finished=True) == []
    finally:
        if manager.state != "stopped":  # unstick the leaked holder so nothing is left running
            manager._run.holders = 0
            manager._run.check_quiet()
            await manager.stop()


async def test_enter_cancelled_while_cleaning_up_a_failed_start() -> None:
    """Cancelling entry while it destroys what a failed start made still destroys it all."""
    resources = FaultyResources()
    resources.fail_creates = 1  # one of the six start-up creations fails ...
    resources.create_steps = 1
    resources.destroy_steps = 5  # ... and closing the five others takes a few steps
    manager: TaskManager[FaultyResource, int] = TaskManager(
        Config(
            on_create=resources.create,
            on_destroy=resources.destroy,
            worker_count=3,
            burst_interval=None,
        )
    )
    entering = asyncio.ensure_future(manager.__aenter__())
    history = resources.history
    assert history is not None
    await wait_until(lambda: any(resource.destroyed for resource in history))
    entering.cancel()  # say, the application's start-up timed out
    await asyncio.gather(entering, return_exceptions=True)
    await wait_until(lambda: resources.creating == 0)
    assert manager.state == "stopped"
    assert resources.problems(finished=True) == []


async def test_stop_with_nan_timeout_is_refused_before_shutting_down(make_manager: Make) -> None:
    """stop(timeout=nan) raises ValueError naming timeout and leaves the manager running."""
    async with make_manager() as manager:
        with pytest.raises(ValueError, match="timeout"):
            await manager.stop(timeout=float("nan"))
        assert manager.state == "running"
        assert await manager.queue_task(use(1)) == 1


async def _late_admission(
    how: str, late: Callable[[FaultyResource], Any], *, cancel_when: asyncio.Event | None = None
) -> list[str]:
    """One worker, a queue of one: a caller waits for room; the room comes as shutdown begins.

    ``first`` ends by starting ``stop()``/``kill()``, then its worker pops ``second`` (which
    ignores the kill's cancellation for a few steps), which wakes the waiting caller: its
    waiter is done before shutdown fails the waiters, and it resumes after shutdown began.
    """
    resources = FaultyResources()
    manager: TaskManager[FaultyResource, Any] = TaskManager(
        Config(
            on_create=resources.create,
            on_destroy=resources.destroy,
            worker_count=1,
            resource_pool_size=0,
            max_queue_size=1,
            burst_interval=None,
        )
    )
    gate = asyncio.Event()
    shutdowns: list[asyncio.Task[None]] = []

    async def first(resource: FaultyResource) -> str:
        await gate.wait()
        shutdowns.append(asyncio.ensure_future(getattr(manager, how)()))
        return "first"

    problems: list[str] = []
    async with manager:
        first_done = manager.submit(first)
        await asyncio.sleep(0)
        second_done = manager.submit(ignore_cancellation("second", steps=3))
        waiting = asyncio.ensure_future(manager.queue_task(late))
        await wait_until(lambda: manager.stats().queued_tasks == 1)
        for _ in range(3):
            await asyncio.sleep(0)  # the caller now waits for room
        gate.set()
        await wait_until(lambda: bool(shutdowns) and manager.state != "running")
        if cancel_when is not None:
            await wait_until(lambda: cancel_when.is_set() or waiting.done())
            waiting.cancel()  # its caller gives up, as map() does when it closes
        done = await asyncio.gather(first_done, second_done, waiting, return_exceptions=True)
        outcome = done[2]
        await asyncio.gather(*shutdowns)
    if cancel_when is None and not (
        isinstance(outcome, ManagerStoppedError) and "shutting down" in str(outcome)
    ):
        problems.append(f"the caller waiting for room got {outcome!r}, not 'shutting down'")
    problems.extend(resources.problems(finished=True))
    return problems


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_caller_given_room_as_shutdown_begins_is_refused(how: str) -> None:
    """A caller waiting for room when shutdown overtakes it is refused; its task never runs."""
    ran: list[str] = []

    async def late(resource: FaultyResource) -> str:
        ran.append("late")
        return "late"

    problems = await _late_admission(how, late)
    if ran:
        problems.append(f"the late task ran after {how}() began")
    assert problems == []


async def test_kill_destroys_the_resource_of_a_worker_running_a_late_task() -> None:
    """After kill(), every resource is destroyed even if a late task is interrupted."""

    started = asyncio.Event()

    async def late(resource: FaultyResource) -> str:
        started.set()
        swallowed = 0
        while True:  # ignores one cancellation, then gives in
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    assert await _late_admission("kill", late, cancel_when=started) == []
