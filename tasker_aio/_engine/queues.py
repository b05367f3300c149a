"""The task record and the two queues the workers read.

A queue is an :class:`asyncio.Queue` built through its extension points (``_init``,
``_put``, ``_get``, as ``PriorityQueue`` is), so ``qsize()``, ``empty()``, ``full()``
and ``get_nowait()`` mean what they mean on any asyncio queue. Two things it adds:

* A cancelled task is discarded lazily: it is marked, counted out of ``live`` at once
  (so ``qsize()`` and the size bound see it gone) and skipped when a worker reaches it,
  which keeps cancellation O(1) even with a million tasks queued.
* ``line``: the callers waiting for room, served first come, first served (asyncio's own
  ``put()`` lets a newcomer take room a woken waiter was promised, and sends a waiter
  that lost the race to the back). :class:`~tasker_aio._engine.admission.Admission`
  runs the line.

The engine's hot paths touch ``items`` and ``live`` directly instead of going through
``put_nowait()``/``get_nowait()``, whose bookkeeping for ``join()`` and getters the
engine does not use (see the README's "How it works").
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NamedTuple

from .._types import E, R

__all__ = [
    "DISCARDED",
    "DONE",
    "NEW",
    "QUEUED",
    "RUNNING",
    "WAITING",
    "Policy",
    "Route",
    "Task",
    "TaskFuture",
    "TaskQueue",
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


class Task(Generic[R, E]):
    """One submission and its retry state.

    It has no ``__init__``: Admission.offer sets every field, which spares the hot path
    a Python call per task.
    """

    __slots__ = (
        "errors", "fn", "future", "home", "policy", "queue", "queued_at", "started_at",
        "state", "trace", "unhealthy_failures",
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
    trace: Any  # what Config.tracer.begin() returned; None untraced


class TaskFuture(asyncio.Future[E]):
    """A future handed to its holder (submit): cancelling it drops or stops its task.

    asyncio's "exception was never retrieved" message names the class: it reads
    ``Future exception was never retrieved``, as for any asyncio future (see __name__).

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
        """Cancel the future, and drop its task from its queue or stop it running."""
        if not super().cancel(msg):
            return False
        task, self.task = self.task, None
        if task is not None:
            task.home.forget(task)
        return True

    def set_result(self, result: E, /) -> None:
        asyncio.Future.set_result(self, result)
        self.task = None

    def set_exception(self, exception: type | BaseException, /) -> None:
        asyncio.Future.set_exception(self, exception)
        self.task = None


# What asyncio's messages (never retrieved, repr) call it: it is the task's Future.
TaskFuture.__name__ = TaskFuture.__qualname__ = "Future"


def _unset(task: Task[Any, Any]) -> None:
    raise RuntimeError("TaskQueue.forget was never set")


class TaskQueue(asyncio.Queue[Task[Any, Any]]):
    """A FIFO of tasks with lazy discard, an optional bound and a line of waiting callers.

    Attributes:
        name: ``"priority"`` or ``"main"``, for messages.
        limit: how many live tasks admission lets in (``maxsize``, or no limit).
        items: the tasks in order, live and discarded.
        live: the live (QUEUED) tasks in ``items``.
        line: futures of callers waiting for room, first come first served.
        forget: what to do with a task whose holder cancelled its future; set by the
            part that answers tasks.
    """

    __slots__ = ("forget", "items", "limit", "line", "live", "name")

    items: deque[Task[Any, Any]]
    live: int

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.limit = maxsize if maxsize > 0 else sys.maxsize
        self.line: deque[asyncio.Future[None]] = deque()
        self.forget: Callable[[Task[Any, Any]], None] = _unset
        super().__init__(maxsize)

    def __repr__(self) -> str:
        return (
            f"<TaskQueue {self.name} live={self.live} maxsize={self.maxsize}"
            f" waiting={len(self.line)}>"
        )

    # asyncio.Queue's extension points

    def _init(self, maxsize: int) -> None:
        self.items = deque()
        self._queue = self.items  # asyncio.Queue's name for its storage
        self.live = 0

    def _put(self, task: Task[Any, Any]) -> None:
        task.queue = self
        task.state = QUEUED
        self.items.append(task)
        self.live += 1

    def _get(self) -> Task[Any, Any]:
        items = self.items
        while True:  # live > 0 (asyncio checks empty() first), so a live task waits
            task = items.popleft()
            if task.state == QUEUED:
                self.live -= 1
                return task

    def qsize(self) -> int:
        return self.live

    def empty(self) -> bool:
        return not self.live

    def full(self) -> bool:
        return self.live >= self.limit

    # What the engine adds

    def push(self, task: Task[Any, Any]) -> None:
        """Append ``task``; re-runs use this too, so it ignores the bound on purpose."""
        self._put(task)

    def discard(self, task: Task[Any, Any]) -> None:
        """Drop a queued task in O(1); a worker skips it when it reaches it."""
        task.state = DISCARDED
        self.live -= 1
        if self.line:
            self.wake_next_in_line()
        if len(self.items) > 2 * self.live + 64:  # keep dead entries a bounded fraction
            self.items = self._queue = deque(t for t in self.items if t.state == QUEUED)

    def drain(self) -> list[Task[Any, Any]]:
        """Empty the queue; return its live tasks in order."""
        tasks = [t for t in self.items if t.state == QUEUED]
        self.items.clear()
        self.live = 0
        return tasks

    def wake_next_in_line(self) -> None:
        """Give freed room to the first caller still waiting in line.

        A woken caller keeps its place until it runs (see leave_line), so a newcomer
        sees the line and cannot take the room promised to it.
        """
        for waiter in self.line:
            if not waiter.done():
                waiter.set_result(None)
                return

    def leave_line(self, waiter: asyncio.Future[None]) -> None:
        line = self.line
        if line and line[0] is waiter:
            del line[0]
        else:
            try:
                line.remove(waiter)
            except ValueError:
                pass  # refuse_line() emptied the line

    def refuse_line(self, error: Callable[[], BaseException]) -> None:
        """Answer every caller waiting for room with ``error()``."""
        while self.line:
            waiter = self.line.popleft()
            if not waiter.done():
                waiter.set_exception(error())
