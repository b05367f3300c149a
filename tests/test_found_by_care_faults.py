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
