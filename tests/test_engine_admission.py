"""Admission and the two queues, tested on their own, without a TaskManager."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tasker_aio import ManagerStoppedError, QueueFullError
from tasker_aio._engine.admission import Admission
from tasker_aio._engine.idle import IdleWorkers
from tasker_aio._engine.queues import DISCARDED, NEW, QUEUED, Task, TaskQueue

from .helpers import settle


def _backoff(attempt: int) -> float:
    return 0.0


class Sleeper:
    """An idle worker stand-in: a future the admission wakes."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = asyncio.get_running_loop().create_future()


async def _job(resource: Any) -> int:
    return 1


def _admission(max_queue_size: int = 0) -> tuple[Admission, list[float], IdleWorkers]:
    arrivals: list[float] = []
    idle = IdleWorkers()
    admission = Admission(
        max_queue_size=max_queue_size,
        task_retries=0,
        retry_backoff=_backoff,
        arrived=arrivals.append,
        idle=idle,
    )
    admission.bind(asyncio.get_running_loop())
    admission.open = True
    return admission, arrivals, idle


async def test_offer_queues_counts_and_wakes_an_idle_worker() -> None:
    """An open admission with room queues the task, logs one arrival and wakes a sleeper."""
    admission, arrivals, idle = _admission()
    sleeper = Sleeper()
    idle.base.append(sleeper)
    task: Task[Any, int] = admission.offer(_job, admission.route(False, False), False)
    assert task.state == QUEUED
    assert admission.main.qsize() == 1 and admission.priority.empty()
    assert len(arrivals) == 1
    assert sleeper.waiter is not None and sleeper.waiter.done()


async def test_routes_pick_the_queue_and_policy() -> None:
    """Each (priority, once) pair has its queue and re-run policy; custom retries make a new one."""
    admission, _, _ = _admission()
    queue, policy = admission.route(True, True)
    assert queue is admission.priority and policy.once
    queue, policy = admission.route(False, False, retries=2)
    assert queue is admission.main and policy.retries == 2 and not policy.once
    with pytest.raises(ValueError, match="retries must be an int >= 0, got -1"):
        admission.route(False, False, retries=-1)
    with pytest.raises(TypeError, match="backoff must be callable, got 3"):
        admission.route(False, False, backoff=3)  # type: ignore[arg-type]


async def test_closed_admission_refuses_a_watched_task_through_its_future() -> None:
    """After close(), a future's task is NEW and its future says the manager is shutting down."""
    admission, arrivals, _ = _admission()
    admission.close()
    task: Task[Any, int] = admission.offer(_job, admission.route(False, False), True)
    assert task.state == NEW
    with pytest.raises(ManagerStoppedError, match="shutting down"):
        await task.future
    assert arrivals == []


async def test_full_queue_refuses_a_watched_task_naming_the_queue() -> None:
    """A bounded queue at its limit refuses a future's task with QueueFullError."""
    admission, _, _ = _admission(max_queue_size=1)
    admission.offer(_job, admission.route(True, False), True)
    refused: Task[Any, int] = admission.offer(_job, admission.route(True, False), True)
    with pytest.raises(QueueFullError, match=r"priority queue is full \(max_queue_size=1\)"):
        await refused.future


async def test_line_is_first_come_first_served_and_blocks_newcomers() -> None:
    """Waiting callers get room in arrival order; a newcomer cannot jump the line."""
    admission, _, _ = _admission(max_queue_size=1)
    route = admission.route(False, False)
    first_in: Task[Any, int] = admission.offer(_job, route, False)
    waiting = [admission.offer(_job, route, False) for _ in range(2)]
    assert [t.state for t in waiting] == [NEW, NEW]
    admitted: list[int] = []

    async def wait(index: int) -> None:
        await admission.wait_for_room(waiting[index])
        admitted.append(index)

    waiters = [asyncio.create_task(wait(i)) for i in range(2)]
    await settle()
    assert len(admission.main.line) == 2
    admission.main.discard(first_in)  # room for one: the first in line
    newcomer: Task[Any, int] = admission.offer(_job, route, True)
    with pytest.raises(QueueFullError):
        await newcomer.future  # the room was promised to the line
    await settle()
    assert admitted == [0]
    assert waiting[0].state == QUEUED and waiting[1].state == NEW
    admission.close()
    with pytest.raises(ManagerStoppedError):
        await waiters[1]
    await waiters[0]


async def test_discard_is_lazy_and_skipped() -> None:
    """A discarded task leaves qsize() at once and is skipped by get_nowait()."""
    admission, _, _ = _admission()
    route = admission.route(False, False)
    tasks: list[Task[Any, int]] = [admission.offer(_job, route, False) for _ in range(3)]
    admission.main.discard(tasks[0])
    assert tasks[0].state == DISCARDED
    assert admission.main.qsize() == 2 and len(admission.main.items) == 3
    assert admission.main.get_nowait() is tasks[1]
    assert admission.main.get_nowait() is tasks[2]
    assert admission.main.empty()
    with pytest.raises(asyncio.QueueEmpty):
        admission.main.get_nowait()


async def test_discarded_entries_stay_a_bounded_fraction() -> None:
    """Discarding most of a long queue compacts it, keeping the live tasks in order."""
    admission, _, _ = _admission()
    route = admission.route(False, False)
    tasks: list[Task[Any, int]] = [admission.offer(_job, route, False) for _ in range(1000)]
    for task in tasks[:900]:
        admission.main.discard(task)
    assert len(admission.main.items) <= 2 * 100 + 64
    assert admission.drain() == tasks[900:]


def test_task_queue_is_an_asyncio_queue() -> None:
    """TaskQueue is an asyncio.Queue: qsize/empty/full count live tasks, maxsize is kept."""
    queue = TaskQueue("main", 2)
    assert isinstance(queue, asyncio.Queue)
    assert queue.maxsize == 2 and queue.empty() and not queue.full()
    tasks: list[Task[Any, Any]] = [Task(), Task()]
    for task in tasks:
        queue.put_nowait(task)
    assert queue.full() and queue.qsize() == 2
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(Task())
    assert "live=2" in repr(queue)


async def test_check_call_names_each_programming_error() -> None:
    """A non-callable, a called coroutine, and a call before binding each get a clear error."""
    admission, _, _ = _admission()
    with pytest.raises(TypeError, match="fn must be callable, got 3"):
        admission.offer(3, admission.route(False, False), True)  # type: ignore[arg-type]
    coroutine = _job(None)
    with pytest.raises(TypeError, match="not a called coroutine"):
        admission.offer(coroutine, admission.route(False, False), True)  # type: ignore[arg-type]
    unbound = Admission(
        max_queue_size=0, task_retries=0, retry_backoff=_backoff, arrived=print, idle=IdleWorkers()
    )
    with pytest.raises(RuntimeError, match="enter it with 'async with' first"):
        unbound.offer(_job, unbound.route(False, False), True)
