"""Concurrent load: every caller answered, no resource shared, counts return to zero."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from functools import partial
from typing import Any

from tasker_aio import MaxRetriesExceededError, TaskManager

from .helpers import Resource, Tracker

Make = Callable[..., TaskManager[Any, Any]]


class Broken(Exception):
    pass


async def test_resource_exclusive_under_mixed_load(make_manager: Make, tracker: Tracker) -> None:
    """Under concurrent mixed load no resource is used by two tasks and all are answered."""
    rng = random.Random(1234)
    active: set[int] = set()

    async def work(resource: Resource, kind: int) -> int:
        assert id(resource) not in active, "resource shared"
        active.add(id(resource))
        resource.acquire()
        try:
            for _ in range(kind % 3):
                await asyncio.sleep(0)
            if kind % 11 == 0:
                raise Broken()
            if kind % 7 == 0:
                raise ValueError(kind)
            return kind
        finally:
            resource.release()
            active.discard(id(resource))

    async with make_manager(
        worker_count=4, max_worker_count=8, burst_interval=0.001, max_retries=1,
        task_retries=1, retry_backoff=lambda a: 0.0,
        check_health=lambda e: not isinstance(e, Broken),
    ) as manager:  # fmt: skip
        kinds = [rng.randrange(1, 1000) for _ in range(600)]
        calls: list[Any] = []
        for i, kind in enumerate(kinds):
            if i % 5 == 0:
                calls.append(manager.run_task(partial(work, kind=kind)))
            elif i % 3 == 0:
                calls.append(manager.submit(partial(work, kind=kind), priority=True))
            else:
                calls.append(manager.queue_task(partial(work, kind=kind)))
        results = await asyncio.gather(*calls, return_exceptions=True)
        stats = manager.stats()
        metrics = manager.metrics()
    assert len(results) == len(kinds)
    for kind, result in zip(kinds, results, strict=True):
        if kind % 11 == 0:
            assert isinstance(result, (MaxRetriesExceededError, Broken))
        elif kind % 7 == 0:
            assert isinstance(result, (MaxRetriesExceededError, ValueError))
        else:
            assert result == kind
    assert stats.running_tasks == 0
    assert stats.queued_tasks == stats.priority_tasks == 0
    assert metrics.total_tasks_arrived == len(kinds)
    assert metrics.total_tasks_completed + metrics.total_tasks_failed == len(kinds)
    assert tracker.alive == 0
