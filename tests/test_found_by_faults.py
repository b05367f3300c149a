"""Regressions for the engine bugs the extended fault harness found (issue 14), one each.

Every test runs on the default loop and on uvloop.
"""

from __future__ import annotations

import asyncio

import pytest

from tasker_aio import TaskManager

from .helpers import Resource, Tracker, manager_on
from .loops import LOOPS, LoopFactory, run


@LOOPS
def test_a_task_cancelling_itself_and_returning_does_not_cancel_the_next_task(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """A task that cancels its own asyncio task and returns at once: the next task is untouched."""

    async def cancels_then_returns(resource: Resource) -> str:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        return "first"  # before the cancellation could be delivered

    async def innocent(resource: Resource) -> str:
        await asyncio.sleep(0)
        return "second"

    async def main() -> tuple[object, object]:
        async with manager_on(tracker) as manager:  # one worker: both run on it, in order
            first = manager.submit(cancels_then_returns)
            second = manager.submit(innocent)
            await asyncio.wait([first, second])
            return (
                first.exception() or first.result(),
                second.exception() or second.result(),
            )

    first, second = run(loop_factory, main)
    assert first == "first"
    assert second == "second", f"the next task on that worker got {second!r}"
    tracker.assert_balanced()


@LOOPS
def test_run_task_passes_on_a_cancellation_that_lands_while_its_temporary_resource_is_destroyed(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """A caller cancelled while run_task destroys its temporary resource gets CancelledError."""

    async def main() -> str:
        async with manager_on(tracker) as manager:  # no pool: run_task makes a temporary one
            caller = asyncio.current_task()
            assert caller is not None

            async def finishes(resource: Resource) -> str:
                # The caller gives up right after this returns: while the manager destroys
                # the temporary resource.
                asyncio.get_running_loop().call_soon(caller.cancel)
                return "value"

            try:
                value = await manager.run_task(finishes)
            except asyncio.CancelledError:
                caller.uncancel()
                return "cancelled"
            try:  # the cancellation may still be pending: it must not be lost
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                caller.uncancel()
                return "cancelled late"
            return value

    assert run(loop_factory, main) in ("cancelled", "cancelled late"), "the cancellation was lost"
    tracker.assert_balanced()


@LOOPS
def test_run_task_keeps_the_callers_timeout_that_expires_while_its_resource_is_destroyed(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """asyncio.timeout() expiring while run_task destroys a temporary resource: TimeoutError."""

    async def main() -> str:
        async with manager_on(tracker) as manager:
            try:
                async with asyncio.timeout(3600) as deadline:

                    async def finishes(resource: Resource) -> str:
                        deadline.reschedule(asyncio.get_running_loop().time())  # due now
                        return "late"

                    return await manager.run_task(finishes)
            except TimeoutError:
                return "timed out"

    assert run(loop_factory, main) == "timed out", "the caller's timeout was ignored"
    tracker.assert_balanced()


@LOOPS
@pytest.mark.parametrize(("workers", "pool"), [(1, 0), (2, 1)])
def test_kill_as_entry_finishes_creating_destroys_what_it_created(
    loop_factory: LoopFactory, tracker: Tracker, workers: int, pool: int
) -> None:
    """kill() asked for as the last on_create of entry returns: every resource is destroyed."""
    total = workers + pool
    manager: TaskManager[Resource, str]

    async def create() -> Resource:
        resource = await tracker.create()
        if len(tracker.created) == total:  # the last one: kill() runs right after it
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(manager.kill()))
        return resource

    async def main() -> str:
        async with manager:
            state = manager.state
        await asyncio.sleep(0.01)  # let anything scheduled run
        return state

    manager = manager_on(tracker, on_create=create, worker_count=workers, resource_pool_size=pool)
    state = run(loop_factory, main)
    assert state == "stopped"  # entry returned a stopped manager, as kill() during entry does
    assert len(tracker.created) == total
    assert tracker.alive == 0, f"{tracker.alive} of {total} resources were never destroyed"
    tracker.assert_balanced()
