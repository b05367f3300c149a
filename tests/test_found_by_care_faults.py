"""Regressions for the engine bugs the fault harness found once it turned resource care on.

One test per bug; every test runs on the default loop and on uvloop.
"""

from __future__ import annotations

import asyncio

from tasker_aio._engine.slots import Slots

from .helpers import Resource, Tracker, manager_on
from .loops import LOOPS, LoopFactory, run

HANG = 5.0  # seconds: detects a hang; never a speed requirement


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


@LOOPS
def test_a_run_task_function_that_cancels_its_caller_still_cancels_it_with_on_reset(
    loop_factory: LoopFactory, tracker: Tracker
) -> None:
    """run_task passes on the caller's cancellation its function requested, despite on_reset."""
    # The function cancels its caller's task and returns before any await; run_task
    # then runs the (async, suspending) on_reset in the caller's task, where that
    # cancellation is delivered. Hooks.call_async compares cancelling() with its value
    # when the hook began (already 1), calls the CancelledError stray, and on_reset
    # "fails": the resource is replaced and run_task returns, swallowing the cancellation.
    resets: list[Resource] = []

    async def reset(resource: Resource) -> None:
        await asyncio.sleep(0)
        resets.append(resource)

    async def cancels_caller(resource: Resource) -> str:
        current = asyncio.current_task()
        assert current is not None
        current.cancel()
        return "returned"

    async def main() -> str:
        manager = manager_on(tracker, resource_pool_size=1, on_reset=reset)
        async with manager:
            caller = asyncio.ensure_future(manager.run_task(cancels_caller))
            await asyncio.wait([caller])
            return "cancelled" if caller.cancelled() else f"returned {caller.result()!r}"

    assert run(loop_factory, main) == "cancelled"
    tracker.assert_balanced()


@LOOPS
def test_a_creation_cancelled_while_waiting_for_a_slot_that_is_freed_in_the_same_step_ends_cleanly(
    loop_factory: LoopFactory,
) -> None:
    """A slot waiter cancelled just as free() skips it raises CancelledError, not ValueError."""
    # At the max_resources cap a worker's creation waits in Slots.take(). If its task is
    # cancelled (kill(), or from outside) and a slot is freed in the same loop step,
    # free() pops the cancelled waiter and skips it; take() then removed it from the
    # deque again and raised ValueError, which ended the worker (a base worker's slot
    # and capacity were lost: "tasker_aio: burst worker failed: ValueError(...)").

    async def main() -> tuple[str, int]:
        slots = Slots(1, asyncio.get_running_loop)
        slots.take_all(1)
        waiting = asyncio.ensure_future(slots.take())
        await asyncio.sleep(0)  # it waits for the one slot
        waiting.cancel()
        slots.free()  # in the same step: skips the cancelled waiter, frees the slot
        await asyncio.wait([waiting])
        ended = "cancelled" if waiting.cancelled() else repr(waiting.exception())
        return ended, slots.live

    assert run(loop_factory, main) == ("cancelled", 0)
