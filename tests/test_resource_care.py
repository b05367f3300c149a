"""Resource care (issue 15): reset, check, recycle, the cap on live resources, timeouts.

The PostgreSQL suite (tests/postgres) proves the same on real connections; these pin
each rule with fake resources. Time-based rules use short intervals and wait for their
effect (a counter), never for a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import Config, ConfigError, MaxRetriesExceededError, TaskManager

from .helpers import Resource, Tracker, settle, use, wait_until

Make = Callable[..., TaskManager[Any, Any]]
HANG = 5.0  # seconds: detects a hang; never a speed requirement


class Broken(Exception):
    """check_health calls this unhealthy."""


def health(exc: BaseException) -> bool:
    return not isinstance(exc, Broken)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait, yielding to timers too, until ``predicate()`` holds; fail after HANG s."""
    async with asyncio.timeout(HANG):
        while not predicate():
            await asyncio.sleep(0.001)


def leaves_state(mark: str) -> Callable[[Resource], Any]:
    """A task that leaves ``mark`` in its resource's session, and reports what it found."""

    async def task(resource: Resource) -> list[str]:
        found = list(resource.session)
        resource.session.append(mark)
        return found

    return task


# ------------------------------------------------------------------------- on_reset


async def test_on_reset_runs_after_every_task_before_the_next(make_manager: Make) -> None:
    """on_reset clears what a task left, after success and failure, before the next task."""
    resets: list[int] = []

    def reset(resource: Resource) -> None:
        resets.append(resource.ident)
        resource.session.clear()

    async def fails(resource: Resource) -> None:
        resource.session.append("open transaction")
        raise ValueError("task error")

    async with make_manager(worker_count=1, resource_pool_size=0, on_reset=reset) as manager:
        assert await manager.queue_task(leaves_state("SET x")) == []
        assert await manager.queue_task(leaves_state("SET y")) == []
        with pytest.raises(ValueError, match="task error"):
            await manager.queue_task(fails)
        assert await manager.queue_task(leaves_state("SET z")) == []
    assert len(resets) == 4


async def test_without_on_reset_state_leaks_to_the_next_task(make_manager: Make) -> None:
    """Without on_reset, the next task on the same worker sees what the last one left."""
    async with make_manager(worker_count=1, resource_pool_size=0) as manager:
        await manager.queue_task(leaves_state("BEGIN"))
        assert await manager.queue_task(leaves_state("INSERT")) == ["BEGIN"]


async def test_a_failing_on_reset_replaces_the_resource_and_keeps_the_answer(
    make_manager: Make, tracker: Tracker
) -> None:
    """on_reset raising: the task's answer stands; the resource is destroyed and replaced."""

    async def reset(resource: Resource) -> None:
        raise ConnectionError("cannot roll back")

    async with make_manager(worker_count=1, resource_pool_size=0, on_reset=reset) as manager:
        assert await manager.queue_task(use("answer")) == "answer"
        await wait_until(lambda: len(tracker.destroyed) == 1 and len(tracker.created) == 2)
        assert await manager.queue_task(use("next")) == "next"
    tracker.assert_balanced()


async def test_on_reset_runs_on_pool_resources_too(make_manager: Make) -> None:
    """A run_task pool resource is reset before it goes back to the pool."""

    def reset(resource: Resource) -> None:
        resource.session.clear()

    async with make_manager(worker_count=1, resource_pool_size=1, on_reset=reset) as manager:
        assert await manager.run_task(leaves_state("BEGIN")) == []
        assert await manager.run_task(leaves_state("BEGIN")) == []


# --------------------------------------------------------------------- check_resource


def checker(calls: list[int]) -> Callable[[Resource], Any]:
    async def check(resource: Resource) -> bool:
        calls.append(resource.ident)
        return not resource.broken

    return check


async def test_check_before_every_task_with_check_idle_after_zero(make_manager: Make) -> None:
    """check_idle_after=0: the resource is checked before every task."""
    calls: list[int] = []
    async with make_manager(
        worker_count=1, resource_pool_size=0, check_resource=checker(calls), check_idle_after=0
    ) as manager:
        for _ in range(3):
            await manager.queue_task(use())
    assert len(calls) == 3


async def test_no_check_before_a_task_with_check_idle_after_none(make_manager: Make) -> None:
    """check_idle_after=None: never checked before a task (only after failures)."""
    calls: list[int] = []
    async with make_manager(
        worker_count=1, resource_pool_size=0, check_resource=checker(calls), check_idle_after=None
    ) as manager:
        for _ in range(3):
            await manager.queue_task(use())
    assert calls == []


async def test_a_dead_idle_resource_is_replaced_before_a_task_sees_it(
    make_manager: Make, tracker: Tracker
) -> None:
    """A resource that died while idle fails its check and is replaced; the task never sees it."""
    calls: list[int] = []
    seen: list[int] = []

    async def task(resource: Resource) -> None:
        seen.append(resource.ident)
        assert not resource.broken

    async with make_manager(
        worker_count=1, resource_pool_size=0, check_resource=checker(calls), check_idle_after=0
    ) as manager:
        await manager.queue_task(task)
        tracker.created[0].broken = True  # say, the server restarted
        await manager.queue_task(task)
    assert seen == [0, 1]


async def test_a_failed_check_after_a_failure_makes_it_unhealthy(
    make_manager: Make, tracker: Tracker
) -> None:
    """A task fails healthily but its resource fails the check: replaced, re-run (max_retries)."""
    runs: list[int] = []

    async def task(resource: Resource) -> str:
        runs.append(resource.ident)
        if len(runs) == 1:
            resource.broken = True
            raise ConnectionResetError("connection lost")  # healthy by check_health
        return "ok"

    async with make_manager(
        worker_count=1,
        resource_pool_size=0,
        check_resource=checker([]),
        check_idle_after=None,
        max_retries=1,
    ) as manager:
        assert await manager.queue_task(task) == "ok"
    assert runs == [0, 1]  # re-run on the replacement


async def test_after_an_unhealthy_failure_every_idle_resource_is_checked(
    make_manager: Make, tracker: Tracker
) -> None:
    """After an unhealthy failure, no task runs on a resource not checked since then."""
    calls: list[int] = []
    gate = asyncio.Event()
    saw_broken: list[bool] = []

    async def task(resource: Resource) -> None:
        saw_broken.append(resource.broken)
        await gate.wait()

    async with make_manager(
        worker_count=3,
        resource_pool_size=1,
        check_health=health,
        max_retries=0,
        check_resource=checker(calls),
        check_idle_after=None,  # only the failure makes them due
    ) as manager:
        for resource in tracker.created:
            resource.broken = True  # a broken server broke them all
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(lambda r: _raise())
        assert calls == []  # the failed task's resource is replaced, not checked
        held = [manager.submit(task) for _ in range(3)]  # one on each worker
        await wait_until(lambda: len(saw_broken) == 3)
        assert await manager.run_task(lambda r: asyncio.sleep(0, result=r.broken)) is False
        gate.set()
        await asyncio.gather(*held)
    assert saw_broken == [False, False, False]
    assert len(calls) >= 3  # the two other workers' and the pool's resources were checked
    tracker.assert_balanced()


async def _raise() -> None:
    raise Broken("server gone")


async def test_check_interval_replaces_a_resource_that_died_while_idle(
    make_manager: Make, tracker: Tracker
) -> None:
    """check_interval: the keepalive finds dead idle worker and pool resources first."""
    calls: list[int] = []
    async with make_manager(
        worker_count=1,
        resource_pool_size=1,
        check_resource=checker(calls),
        check_idle_after=None,
        check_interval=0.01,
    ) as manager:
        for resource in tracker.created:
            resource.broken = True
        await eventually(lambda: len(tracker.destroyed) == 2 and tracker.alive == 2)
        assert all(not r.broken for r in tracker.created[2:])
        assert await manager.queue_task(lambda r: asyncio.sleep(0, result=r.broken)) is False
        assert await manager.run_task(lambda r: asyncio.sleep(0, result=r.broken)) is False
    tracker.assert_balanced()


# ------------------------------------------------------------------ max_resource_age


async def test_max_resource_age_recycles_worker_and_pool_resources(
    make_manager: Make, tracker: Tracker
) -> None:
    """A resource older than max_resource_age is replaced, idle or between tasks."""
    async with make_manager(worker_count=1, resource_pool_size=1, max_resource_age=0.02) as manager:
        first = set(tracker.created)
        await eventually(lambda: first <= set(tracker.destroyed))
        assert await manager.queue_task(use(1)) == 1
        assert await manager.run_task(use(2)) == 2
    tracker.assert_balanced()


async def test_idle_pool_resources_are_recycled_at_their_age_before_a_long_keepalive(
    make_manager: Make, tracker: Tracker
) -> None:
    """The pool's idle sweep runs at the sooner of check_interval and max_resource_age."""
    async with make_manager(
        worker_count=1,
        resource_pool_size=1,
        check_resource=lambda resource: True,
        check_interval=3600.0,  # a keepalive far away must not hold up the recycling
        max_resource_age=0.02,
    ):
        first = set(tracker.created)
        await eventually(lambda: first <= set(tracker.destroyed))
    tracker.assert_balanced()


# --------------------------------------------------------------------- max_resources


async def test_live_resources_never_exceed_max_resources(
    make_manager: Make, tracker: Tracker
) -> None:
    """Bursting plus run_task under load never take more than max_resources at once."""
    gate = asyncio.Event()
    async with make_manager(
        worker_count=2,
        max_worker_count=6,
        resource_pool_size=1,
        max_resources=4,
        burst_interval=0.005,
    ) as manager:
        queued = [manager.submit(use(gate=gate)) for _ in range(20)]
        runs = [asyncio.create_task(manager.run_task(use(gate=gate))) for _ in range(5)]
        await eventually(lambda: tracker.peak >= 4)
        assert manager.stats().live_resources <= 4
        gate.set()
        await asyncio.gather(*queued, *runs)
        assert manager.stats().live_resources == tracker.alive
    assert tracker.peak == 4
    tracker.assert_balanced()


async def test_run_task_waits_for_a_slot_at_the_cap(make_manager: Make, tracker: Tracker) -> None:
    """At the cap, run_task waits until a resource is free instead of creating one more."""
    gate = asyncio.Event()
    async with make_manager(worker_count=1, resource_pool_size=0, max_resources=2) as manager:
        first = asyncio.create_task(manager.run_task(use(1, gate=gate)))
        await wait_until(lambda: manager.stats().live_resources == 2)
        second = asyncio.create_task(manager.run_task(use(2)))
        await settle()
        assert not second.done() and tracker.peak == 2
        gate.set()
        assert await asyncio.gather(first, second) == [1, 2]
    assert tracker.peak == 2


async def test_run_task_with_no_room_ever_says_so(make_manager: Make) -> None:
    """max_resources taken by base workers and no pool: run_task fails at once, clearly."""
    from tasker_aio import ResourceCreationError

    async with make_manager(worker_count=2, max_resources=2) as manager:
        assert manager.stats().available_resources == 0  # the default pool found no room
        with pytest.raises(ResourceCreationError, match="max_resources"):
            await manager.run_task(use())


async def test_the_default_pool_shrinks_to_fit_the_cap(make_manager: Make) -> None:
    """With max_resources, the default pool is whatever room the base workers leave."""
    async with make_manager(worker_count=3, max_resources=4) as manager:
        stats = manager.stats()
        assert stats.available_resources == 1 and stats.live_resources == 4


# ------------------------------------------------------------------- destroy_timeout


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_destroy_timeout_bounds_shutdown(tracker: Tracker, how: str) -> None:
    """An on_destroy that never returns is abandoned after destroy_timeout; shutdown returns."""
    never = asyncio.Event()

    async def hang(resource: Resource) -> None:
        await tracker.destroy(resource)
        await never.wait()

    manager: TaskManager[Resource, Any] = TaskManager(
        Config(
            on_create=tracker.create,
            on_destroy=hang,
            worker_count=2,
            burst_interval=None,
            destroy_timeout=0.01,
        )
    )
    async with asyncio.timeout(HANG):
        async with manager:
            assert await manager.queue_task(use(1)) == 1
            await getattr(manager, how)()
    assert manager.state == "stopped"
    assert manager.stats().live_resources == 0
    tracker.assert_balanced()


# -------------------------------------------------------------- replacing and bursting


async def test_replacement_is_created_while_the_broken_one_is_destroyed(
    make_manager: Make, tracker: Tracker
) -> None:
    """A slow on_destroy does not hold up the replacement: it is created meanwhile."""
    release = asyncio.Event()

    async def slow_destroy(resource: Resource) -> None:
        await release.wait()
        await tracker.destroy(resource)

    async with make_manager(
        worker_count=1,
        resource_pool_size=0,
        on_destroy=slow_destroy,
        check_health=health,
        max_retries=0,
    ) as manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(lambda r: _raise())
        assert await manager.queue_task(use(5)) == 5  # on the replacement
        assert manager.stats().live_resources == 2  # the broken one is still closing
        release.set()
    tracker.assert_balanced()


async def test_create_backoff_paces_on_create_retries(make_manager: Make, tracker: Tracker) -> None:
    """create_backoff gives the pause after each failed on_create, by attempt number."""
    attempts: list[int] = []

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    async with make_manager(
        worker_count=1,
        resource_pool_size=0,
        check_health=health,
        max_retries=0,
        create_backoff=backoff,
    ) as manager:
        tracker.fail_creates = 3
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(lambda r: _raise())
        assert await manager.queue_task(use(1)) == 1
    assert attempts == [1, 2, 3]


async def test_burst_idle_timeout_keeps_burst_workers_longer(
    make_manager: Make, tracker: Tracker
) -> None:
    """A burst worker is retired only once idle for burst_idle_timeout."""
    gate = asyncio.Event()
    async with make_manager(
        worker_count=1, max_worker_count=2, burst_interval=0.005, burst_idle_timeout=0.2
    ) as manager:
        held = [manager.submit(use(gate=gate)) for _ in range(4)]
        await eventually(lambda: manager.stats().burst_workers == 1)
        gate.set()
        await asyncio.gather(*held)
        await asyncio.sleep(0.05)  # ten scaling steps: the default grace (0.1 s) is not over
        assert manager.stats().burst_workers == 1
        await eventually(lambda: manager.stats().burst_workers == 0)


async def test_failed_burst_creations_back_off(make_manager: Make, tracker: Tracker) -> None:
    """While burst creations fail, the scaling loop waits create_backoff between attempts."""
    gate = asyncio.Event()
    attempts: list[int] = []

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 10.0  # long: no second burst attempt within the test

    async with make_manager(
        worker_count=1, max_worker_count=3, burst_interval=0.005, create_backoff=backoff
    ) as manager:
        tracker.fail_creates = 100
        held = [manager.submit(use(gate=gate)) for _ in range(5)]
        await eventually(lambda: bool(attempts))
        await asyncio.sleep(0.05)  # ten scaling steps
        failures = tracker.fail_creates
        assert 100 - failures <= 2  # one step's creations, then the backoff
        tracker.fail_creates = 0
        gate.set()
        await asyncio.gather(*held)


# ------------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("on_reset", 3),
        ("check_resource", "yes"),
        ("check_idle_after", -1.0),
        ("check_idle_after", float("nan")),
        ("check_interval", 0),
        ("check_interval", float("inf")),
        ("max_resource_age", -5),
        ("max_resources", 1),
        ("max_resources", 2.5),
        ("burst_idle_timeout", "soon"),
        ("create_backoff", 7),
        ("destroy_timeout", -0.1),
    ],
)
def test_bad_resource_settings_name_the_field_and_value(
    tracker: Tracker, field: str, value: object
) -> None:
    """Each new resource field refuses a bad value with a ConfigError naming both."""
    config = Config(
        on_create=tracker.create,
        on_destroy=tracker.destroy,
        worker_count=2,
        **{field: value},  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError, match=field) as caught:
        TaskManager(config)
    assert repr(value) in str(caught.value)


def test_a_keepalive_without_a_check_is_refused(tracker: Tracker) -> None:
    """check_interval without check_resource is a ConfigError (it would have nothing to do)."""
    config = Config(
        on_create=tracker.create, on_destroy=tracker.destroy, worker_count=1, check_interval=5.0
    )
    with pytest.raises(ConfigError, match=r"check_interval \(5\.0\) needs check_resource"):
        TaskManager(config)


def test_a_pool_that_cannot_fit_the_cap_is_refused(tracker: Tracker) -> None:
    """worker_count + resource_pool_size above max_resources is a ConfigError."""
    config = Config(
        on_create=tracker.create,
        on_destroy=tracker.destroy,
        worker_count=2,
        resource_pool_size=2,
        max_resources=3,
    )
    with pytest.raises(ConfigError, match=r"resource_pool_size \(2\).*max_resources \(3\)"):
        TaskManager(config)
