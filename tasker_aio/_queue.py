"""The task record and the FIFO queue the workers read.

A cancelled task is discarded lazily: it is marked, counted out of ``live`` at once
(so stats and the size bound see it gone) and skipped when a worker reaches it, which
keeps cancellation O(1) even with a million tasks queued.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple

from ._types import E, R

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = [
    "DISCARDED", "DONE", "NEW", "QUEUED", "RUNNING", "WAITING", "Policy", "Route", "Task",
    "TaskQueue", "WatchedFuture", "route_index",
]  # fmt: skip

# Task states.
NEW = 5  # built, not accepted: refused, or waiting for room in a full queue
QUEUED = 0  # in a queue, live
RUNNING = 1  # on a worker
WAITING = 2  # failed healthily, waiting out its backoff; holds no worker
DONE = 3  # answered (value, error, cancellation or ManagerStoppedError)
DISCARDED = 4  # cancelled before it ran again; skipped by the workers


class Policy(NamedTuple):
    """How a task is re-run; the defaults are shared by every task that uses them."""

    once: bool  # never re-run, whatever the failure
    retries: int  # re-runs after healthy failures
    backoff: Callable[[int], float]  # attempt -> seconds before a healthy re-run


Route = tuple["TaskQueue", Policy]  # a task's queue and re-run policy


def route_index(priority: bool, once: bool) -> int:
    """Where the route for ``(priority, once)`` is in TaskManager._routes."""
    return (2 if priority else 0) + (1 if once else 0)


class Task(Generic[R, E]):
    """One submission and its retry state.

    It has no ``__init__``: TaskManager._offer sets every field, which spares the hot
    path a Python call per task.
    """

    __slots__ = (
        "errors", "fn", "future", "home", "policy", "queue", "queued_at", "started_at",
        "state", "unhealthy_failures",
    )  # fmt: skip

    fn: Callable[[R], Awaitable[E]]
    future: asyncio.Future[E]
    home: TaskQueue  # the queue it was submitted to; healthy re-runs go back there
    queue: TaskQueue  # the queue it is in now
    policy: Policy
    queued_at: float
    started_at: float  # 0.0 until it first runs
    state: int
    errors: list[BaseException] | None  # one per failed attempt
    unhealthy_failures: int  # the rest of errors were healthy


class WatchedFuture(asyncio.Future[E]):
    """A future handed to its holder (submit): cancelling it drops or stops its task.

    Overriding cancel() costs nothing per task, where a done-callback costs a
    registration, a removal and a list for every future; the awaiting forms keep
    plain futures (the fastest to await) and see their caller's cancellation
    themselves.
    """

    __slots__ = ("task",)
    # The task and its future refer to each other until the future is done; then the
    # link goes, so both are freed with their last reference instead of waiting for
    # the garbage collector (a cycle per task made it a large share of the cost).
    task: Task[Any, E] | None

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        task, self.task = self.task, None
        if task is not None:
            task.home.manager._forget(task)
        return True

    def set_result(self, result: E, /) -> None:
        asyncio.Future.set_result(self, result)
        self.task = None

    def set_exception(self, exception: type | BaseException, /) -> None:
        asyncio.Future.set_exception(self, exception)
        self.task = None


class TaskQueue:
    """A FIFO of tasks with an optional bound and waiters for room."""

    __slots__ = ("items", "limit", "live", "manager", "maxsize", "name", "putters")

    def __init__(self, manager: TaskManager[Any, Any], name: str, maxsize: int) -> None:
        self.manager = manager
        self.name = name
        self.maxsize = maxsize
        self.limit = maxsize if maxsize > 0 else sys.maxsize  # live tasks it admits
        self.items: deque[Task[Any, Any]] = deque()
        self.live = 0  # the QUEUED tasks in items; the rest are DISCARDED
        self.putters: deque[asyncio.Future[None]] = deque()

    def full(self) -> bool:
        return self.live >= self.limit

    def push(self, task: Task[Any, Any]) -> None:
        """Append ``task``; re-runs use this too, so it ignores the bound on purpose."""
        task.queue = self
        task.state = QUEUED
        self.items.append(task)
        self.live += 1

    def discard(self, task: Task[Any, Any]) -> None:
        task.state = DISCARDED
        self.live -= 1
        if self.putters:
            self.wake_putter()
        if len(self.items) > 2 * self.live + 64:  # keep dead entries a bounded fraction
            self.items = deque(t for t in self.items if t.state == QUEUED)

    def drain(self) -> list[Task[Any, Any]]:
        tasks = [t for t in self.items if t.state == QUEUED]
        self.items.clear()
        self.live = 0
        return tasks

    def wake_putter(self) -> None:
        """Give freed room to the first caller still waiting in line.

        A woken caller keeps its place until it runs (see leave_line), so a newcomer
        sees the line and cannot take the room promised to it.
        """
        for waiter in self.putters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def leave_line(self, waiter: asyncio.Future[None]) -> None:
        putters = self.putters
        if putters and putters[0] is waiter:
            del putters[0]
        else:
            try:
                putters.remove(waiter)
            except ValueError:
                pass  # fail_putters() emptied the line

    def fail_putters(self, error: Callable[[], BaseException]) -> None:
        while self.putters:
            waiter = self.putters.popleft()
            if not waiter.done():
                waiter.set_exception(error())
