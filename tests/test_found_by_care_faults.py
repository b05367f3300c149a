"""Regressions for the engine bugs the fault harness found once it turned resource care on.

One test per bug; every test runs on the default loop and on uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from tasker_aio import Config, TaskManager

from .helpers import Resource, Tracker

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
HANG = 5.0  # seconds: detects a hang; never a speed requirement


def _loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the bench group
        return factories
    return [*factories, pytest.param(uvloop.new_event_loop, id="uvloop")]


LOOPS = pytest.mark.parametrize("loop_factory", _loop_factories())


def run(loop_factory: LoopFactory, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def manager_on(tracker: Tracker, **config: Any) -> TaskManager[Resource, str]:
    settings: dict[str, Any] = {
        "on_create": tracker.create,
        "on_destroy": tracker.destroy,
        "worker_count": 1,
        "resource_pool_size": 0,
        "burst_interval": None,
    }
    settings.update(config)
    return TaskManager(Config(**settings))


@LOOPS
def test_a_caller_giving_up_during_the_check_after_a_failure_can_still_cancel_the_next_task(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """A caller cancelling during the post-failure check leaves the worker able to interrupt."""
    # The caller of a task that failed cancels while check_resource runs on its resource
    # (the task is still RUNNING): interrupt() cancels the worker there, and the worker
    # withdrew that cancel but kept cancel_requested set, so it ignored every later
    # interrupt(): the next task's caller gave up and the task ran on to its end.
    in_check = asyncio.Event()
    let_check_end = asyncio.Event()

    async def check(resource: Resource) -> bool:
        if not let_check_end.is_set():
            in_check.set()
            await let_check_end.wait()
        return True

    async def fails(resource: Resource) -> str:
        raise ValueError("a healthy failure")

    started = asyncio.Event()
    seen: list[str] = []

    async def long(resource: Resource) -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # until its caller's cancel interrupts it
        except asyncio.CancelledError:
            seen.append("interrupted")
            raise
        return "never"

    async def main() -> None:
        manager = manager_on(tracker, check_resource=check, check_idle_after=None)
        async with manager:
            first = manager.submit(fails)
            await in_check.wait()
            first.cancel()  # the caller gives up while its failure is being judged
            await asyncio.wait([first])
            let_check_end.set()
            second = manager.submit(long)
            async with asyncio.timeout(HANG):
                await started.wait()
            second.cancel()
            async with asyncio.timeout(HANG):  # the worker must interrupt it
                while not seen:
                    await asyncio.sleep(0)

    run(loop_factory, main)
    tracker.assert_balanced()


@LOOPS
def test_a_run_task_caller_cancelled_while_a_rejected_pool_resource_is_replaced_keeps_the_pool_full(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """A run_task caller cancelled while the pool replaces a rejected resource: the pool refills."""
    # check_resource rejects the idle pool resource a run_task caller took; the pool
    # creates another in the caller's task (ResourcePool._renew), and the caller is
    # cancelled meanwhile: the new resource was never made and nothing refilled the
    # pool, which stayed one short for good (every later run_task made a temporary one).
    checks: list[Resource] = []
    creating = asyncio.Event()
    let_create_end = asyncio.Event()

    def check(resource: Resource) -> bool:
        checks.append(resource)
        return len(checks) > 1  # the first check, the pool resource's, says no

    async def create() -> Resource:
        if checks and not let_create_end.is_set():  # the replacement
            creating.set()
            await let_create_end.wait()
        return await tracker.create()

    async def use(resource: Resource) -> str:
        return "used"

    async def main() -> int:
        manager = manager_on(
            tracker,
            on_create=create,
            resource_pool_size=1,
            check_resource=check,
            check_idle_after=0,
        )
        async with manager:
            caller = asyncio.ensure_future(manager.run_task(use))
            async with asyncio.timeout(HANG):
                await creating.wait()
            caller.cancel()
            await asyncio.wait([caller])
            let_create_end.set()
            async with asyncio.timeout(HANG):  # the pool refills in the background
                while manager.stats().available_resources < 1:
                    await asyncio.sleep(0.001)
            return manager.stats().available_resources

    assert run(loop_factory, main) == 1
    tracker.assert_balanced()


@LOOPS
def test_a_run_task_failure_is_counted_even_if_its_caller_gives_up_during_the_check(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """A run_task failure counts in metrics at once, though its caller gives up in the check."""
    # After a healthy failure on a pool resource, run_task asks check_resource whether
    # the resource survived, and recorded the failure only after that check: a caller
    # cancelled during the check was never counted (total_tasks_failed stayed 0), and a
    # counted failure's run time included the check.
    in_check = asyncio.Event()

    async def check(resource: Resource) -> bool:
        in_check.set()
        await asyncio.Event().wait()  # until the caller's cancel ends it
        return True

    async def fails(resource: Resource) -> str:
        raise ValueError("a healthy failure")

    async def main() -> tuple[int, int]:
        manager = manager_on(
            tracker, resource_pool_size=1, check_resource=check, check_idle_after=None
        )
        async with manager:
            caller = asyncio.ensure_future(manager.run_task(fails))
            async with asyncio.timeout(HANG):
                await in_check.wait()
            failed_during_check = manager.metrics().total_tasks_failed
            caller.cancel()
            await asyncio.wait([caller])
            return failed_during_check, manager.metrics().total_tasks_failed

    assert run(loop_factory, main) == (1, 1)
    tracker.assert_balanced()
