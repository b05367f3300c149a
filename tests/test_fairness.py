"""Fairness to the event loop: the workers share one budget of back-to-back running per turn.

Every test runs on the default loop and on uvloop, with the workers' clock replaced by
one that only the tasks move: each task "runs" for ``STEP`` seconds, so what a worker
sees of time, and so when it yields, repeats exactly.
"""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from tasker_aio import Config, TaskManager
from tasker_aio._engine import worker, workers

from .helpers import Tracker
from .loops import LOOPS, LoopFactory

BUDGET = workers._TURN_BUDGET  # seconds the workers may run back to back per turn
STEP = BUDGET / 100  # what each task adds to the fake clock
WORKERS = 200
TASKS = 20_000


class FakeClock:
    """A monotonic clock that stands still until a task moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _flood(loop_factory: LoopFactory, tracker: Tracker, clock: FakeClock) -> list[tuple[int, int]]:
    """Run TASKS never-suspending tasks on WORKERS workers beside a ticker coroutine.

    Returns, for each task in the order they ran, (its worker's task id, ticks so far):
    the ticker steps once per loop turn, so tasks with one tick ran in one turn.
    """
    ran: list[tuple[int, int]] = []
    ticks = 0

    async def step(resource: object) -> None:
        clock.now += STEP
        ran.append((id(asyncio.current_task()), ticks))

    async def main() -> None:
        nonlocal ticks
        config = Config(
            on_create=tracker.create,
            on_destroy=tracker.destroy,
            worker_count=WORKERS,
            resource_pool_size=0,
            burst_interval=None,
        )
        async with TaskManager[Any, None](config) as manager:
            futures = [manager.submit(step) for _ in range(TASKS)]
            flooded = asyncio.gather(*futures)
            while not flooded.done():
                ticks += 1
                await asyncio.sleep(0)
            await flooded

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    tracker.assert_balanced()
    assert len(ran) == TASKS
    return ran


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The workers' clock (and the worker set's, which starts each turn's budget)."""
    fake = FakeClock()
    for module in (worker, workers):
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


@LOOPS
def test_a_flood_on_many_workers_gives_the_loop_a_turn_every_budget(
    loop_factory: LoopFactory, tracker: Tracker, clock: FakeClock
) -> None:
    """200 workers, a flood of never-suspending tasks: each loop turn runs about 1 ms of it."""
    ran = _flood(loop_factory, tracker, clock)
    per_turn = [len(list(tasks)) for _, tasks in itertools.groupby(ran, key=lambda r: r[1])]
    # The budget's worth, and then a task or two for each worker the turn had woken.
    assert max(per_turn) * STEP <= 2 * BUDGET + 2 * WORKERS * STEP, max(per_turn)
    assert len(per_turn) >= TASKS * STEP / (2 * BUDGET + 2 * WORKERS * STEP)


@LOOPS
def test_many_workers_share_the_budget_instead_of_yielding_after_each_task(
    loop_factory: LoopFactory, tracker: Tracker, clock: FakeClock
) -> None:
    """200 workers: a worker runs tasks back to back until the turn's 1 ms is spent.

    A share of 1 ms / 200 workers would make each yield after every task.
    """
    ran = _flood(loop_factory, tracker, clock)
    runs = [len(list(tasks)) for _, tasks in itertools.groupby(ran)]  # same worker, same turn
    assert max(runs) * STEP >= BUDGET
    assert max(runs) * STEP <= 2 * BUDGET + STEP  # a budget renewed once at most
