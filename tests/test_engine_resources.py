"""Resources and the run_task pool, tested on their own, without a TaskManager."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, ResourceCreationError
from tasker_aio._engine.failures import HealthCheck
from tasker_aio._engine.hooks import Hooks, SafeLogger
from tasker_aio._engine.pool import ResourcePool
from tasker_aio._engine.resources import NO_RESOURCE, Resources
from tasker_aio._engine.run import RunState

from .helpers import Resource, Tracker, settle, wait_until

LOGGER = SafeLogger(logging.getLogger("tests.engine"))
HOOKS = Hooks(LOGGER)


def _run() -> RunState:
    run = RunState(LOGGER)
    run.loop = asyncio.get_running_loop()
    return run


def _resources(tracker: Tracker, run: RunState | None = None) -> Resources[Resource]:
    return Resources(
        on_create=tracker.create, on_destroy=tracker.destroy, run=run or _run(), hooks=HOOKS
    )


async def test_create_all_makes_every_resource(tracker: Tracker) -> None:
    """create_all returns as many resources as asked, created concurrently."""
    made = await _resources(tracker).create_all(3)
    assert sorted(r.ident for r in made) == [0, 1, 2]
    await _resources(tracker).destroy_all(made)
    tracker.assert_balanced()


async def test_create_all_is_all_or_nothing(tracker: Tracker) -> None:
    """One failed on_create destroys the others and raises ResourceCreationError from it."""
    tracker.fail_creates = 1
    with pytest.raises(ResourceCreationError, match="failed to initialize") as caught:
        await _resources(tracker).create_all(3)
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert tracker.alive == 0
    tracker.assert_balanced()


async def test_sync_hooks_work(tracker: Tracker) -> None:
    """Plain functions serve as on_create and on_destroy."""
    destroyed: list[object] = []
    resources: Resources[object] = Resources(
        on_create=object, on_destroy=destroyed.append, run=_run(), hooks=HOOKS
    )
    made = await resources.create()
    await resources.destroy(made)
    assert destroyed == [made]


async def test_create_with_retry_retries_until_it_gets_one(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed creations are logged with their attempt number and retried."""
    run = _run()
    run.state = "running"
    tracker.fail_creates = 2
    resource = await _resources(tracker, run).create_with_retry("worker", give_up=lambda: False)
    assert isinstance(resource, Resource)
    assert [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()] == [
        "on_create failed for a worker (attempt 1): ConnectionError('cannot connect')",
        "on_create failed for a worker (attempt 2): ConnectionError('cannot connect')",
    ]
    await _resources(tracker).destroy(resource)


async def test_create_with_retry_gives_up_when_told(tracker: Tracker) -> None:
    """give_up() after a failure returns NO_RESOURCE instead of retrying."""
    tracker.fail_creates = 1
    resource = await _resources(tracker).create_with_retry("burst worker", give_up=lambda: True)
    assert resource is NO_RESOURCE


async def test_destroy_finishes_even_if_its_caller_is_cancelled() -> None:
    """A caller cancelled during on_destroy waits for it to finish, then sees the cancel."""
    gate = asyncio.Event()
    finished: list[str] = []

    async def slow_destroy(resource: str) -> None:
        await gate.wait()
        finished.append(resource)

    resources: Resources[str] = Resources(
        on_create=str, on_destroy=slow_destroy, run=_run(), hooks=HOOKS
    )
    caller = asyncio.create_task(resources.destroy("conn"))
    await settle()
    caller.cancel()
    await settle()
    assert not caller.done()  # still waiting for on_destroy
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished == ["conn"]


async def test_destroy_logs_a_failing_hook(caplog: pytest.LogCaptureFixture) -> None:
    """An on_destroy that raises is logged with the resource, not raised."""

    def broken(resource: str) -> None:
        raise OSError("gone")

    resources: Resources[str] = Resources(on_create=str, on_destroy=broken, run=_run(), hooks=HOOKS)
    await resources.destroy("conn")
    assert "on_destroy failed for 'conn': OSError('gone')" in caplog.text


def _pool(tracker: Tracker, run: RunState, check_health: Any = None) -> ResourcePool[Resource]:
    log: list[object] = []
    return ResourcePool(
        resources=_resources(tracker, run),
        run=run,
        health=HealthCheck(check_health, HOOKS),
        arrived=log.append,
        completed=log.append,
        failed=log.append,
        tidy=lambda: None,
    )


async def test_pool_lends_and_takes_back(tracker: Tracker) -> None:
    """run() uses an idle pool resource and returns it afterwards."""
    run = _run()
    pool = _pool(tracker, run)
    pool.fill([await tracker.create()])

    async def job(resource: Resource) -> int:
        assert pool.available == 0  # lent out
        return resource.ident

    assert await pool.run(job) == 0
    assert pool.available == 1 and run.holders == 0
    run.state = "stopping"
    await pool.close()
    tracker.assert_balanced()


async def test_pool_uses_a_temporary_resource_when_empty(tracker: Tracker) -> None:
    """With no idle resource, run() creates one and destroys it afterwards."""
    pool = _pool(tracker, _run())
    assert await pool.run(lambda r: asyncio.sleep(0, result=r.ident)) == 0
    assert pool.available == 0 and tracker.alive == 0


async def test_pool_replaces_a_broken_resource(tracker: Tracker) -> None:
    """An unhealthy failure destroys the pool resource and a refill takes its place."""
    run = _run()
    run.state = "running"
    pool = _pool(tracker, run, check_health=lambda exc: False)
    pool.fill([await tracker.create()])

    async def breaks(resource: Resource) -> None:
        raise ConnectionError("broken")

    with pytest.raises(ConnectionError):
        await pool.run(breaks)
    assert tracker.destroyed == [tracker.created[0]]
    await wait_until(lambda: run.jobs == 0)  # the refill
    assert pool.available == 1 and run.holders == 0
    run.state = "stopping"
    await pool.close()
    tracker.assert_balanced()


async def test_pool_answers_a_killed_run_with_manager_stopped(tracker: Tracker) -> None:
    """kill_all() cancels a running run() and its caller gets ManagerStoppedError."""
    run = _run()
    pool = _pool(tracker, run)
    gate = asyncio.Event()
    caller = asyncio.create_task(pool.run(lambda r: gate.wait()))
    await wait_until(lambda: tracker.alive == 1)
    run.kill_all()
    with pytest.raises(ManagerStoppedError, match="killed"):
        await caller
    assert tracker.alive == 0
