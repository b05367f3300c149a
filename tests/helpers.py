"""Test helpers: fake resources that check the lifecycle invariants, and loop steppers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tasker_aio import (
    Config,
    MaxRetriesExceededError,
    TaskLifecycleTimestamps,
    TaskManager,
    TaskMetrics,
)


class Resource:
    """A fake resource that fails loudly if two tasks use it at once."""

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.busy = False
        self.uses = 0
        self.broken = False  # what a check_resource of the tests reports
        self.session: list[str] = []  # state a task may leave behind (see on_reset)

    def __repr__(self) -> str:
        return f"Resource({self.ident})"

    def acquire(self) -> None:
        assert not self.busy, f"{self!r} used by two tasks at once"
        self.busy = True
        self.uses += 1

    def release(self) -> None:
        self.busy = False


class Tracker:
    """Creates and destroys Resources, recording every call.

    ``fail_creates`` makes the next N creations raise; ``create_gate`` (when set)
    makes creations wait for it.
    """

    def __init__(self) -> None:
        self.created: list[Resource] = []
        self.destroyed: list[Resource] = []
        self.fail_creates = 0
        self.create_gate: asyncio.Event | None = None
        self.creating = 0
        self.peak = 0  # most resources alive or being created at once

    async def create(self) -> Resource:
        self.creating += 1
        self.peak = max(self.peak, self.alive + self.creating)
        try:
            if self.create_gate is not None:
                await self.create_gate.wait()
            if self.fail_creates:
                self.fail_creates -= 1
                raise ConnectionError("cannot connect")
            resource = Resource(len(self.created))
            self.created.append(resource)
            return resource
        finally:
            self.creating -= 1

    async def destroy(self, resource: Resource) -> None:
        assert resource in self.created, f"destroying unknown {resource!r}"
        assert resource not in self.destroyed, f"{resource!r} destroyed twice"
        assert not resource.busy, f"{resource!r} destroyed while in use"
        self.destroyed.append(resource)

    @property
    def alive(self) -> int:
        return len(self.created) - len(self.destroyed)

    def assert_balanced(self) -> None:
        assert sorted(r.ident for r in self.destroyed) == [r.ident for r in self.created]


def use(result: Any = None, *, gate: asyncio.Event | None = None) -> Callable[[Resource], Any]:
    """A task that holds its resource (checking exclusivity) until ``gate`` is set."""

    async def task(resource: Resource) -> Any:
        resource.acquire()
        try:
            if gate is not None:
                await gate.wait()
            else:
                await asyncio.sleep(0)
            return result
        finally:
            resource.release()

    return task


async def settle(rounds: int = 5) -> None:
    """Let callbacks scheduled with call_soon run (no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_until(predicate: Callable[[], bool], rounds: int = 10_000) -> None:
    """Yield to the loop until ``predicate()`` holds; fail instead of hanging."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def manager_on(tracker: Tracker, **config: Any) -> TaskManager[Resource, str]:
    """A manager of ``tracker``'s resources: one worker, no pool, no bursting, then ``config``."""
    settings: dict[str, Any] = {
        "on_create": tracker.create,
        "on_destroy": tracker.destroy,
        "worker_count": 1,
        "resource_pool_size": 0,
        "burst_interval": None,
    }
    settings.update(config)
    return TaskManager(Config(**settings))


class ArrivalsOnly:
    """A custom collector counting arrivals only (what an exporter reads from metrics()).

    ``broken`` makes metrics() raise.
    """

    def __init__(self, *, broken: bool = False) -> None:
        self.arrived = 0
        self.broken = broken

    def record_arrival(self) -> None:
        self.arrived += 1

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        pass

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        pass

    def record_retry(self) -> None:
        pass

    def metrics(self) -> TaskMetrics:
        if self.broken:
            raise RuntimeError("collector down")
        return TaskMetrics(total_tasks_arrived=self.arrived)


async def refused(resource: Resource) -> None:
    """A task that fails as a refused connection would."""
    raise ConnectionError("refused")


async def work(manager: TaskManager[Any, Any], completed: int, failed: int) -> None:
    """``completed`` tasks that succeed and ``failed`` that fail twice (one retry each)."""
    outcomes = await asyncio.gather(
        *[manager.queue_task(use(n)) for n in range(completed)],
        *[manager.submit(refused, retries=1, backoff=lambda attempt: 0.0) for _ in range(failed)],
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, MaxRetriesExceededError) for outcome in outcomes) == failed
