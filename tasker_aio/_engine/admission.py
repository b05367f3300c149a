"""Admission: building tasks and letting them into the two queues, or into the line."""

from __future__ import annotations

import asyncio
import inspect
from asyncio import Future as _Future
from collections.abc import Awaitable, Callable
from threading import get_ident
from time import monotonic as _monotonic
from typing import Any

from .._exceptions import ManagerStoppedError, QueueFullError
from .._types import E, R
from .idle import IdleWorkers
from .loop import loop_thread, running_loop
from .queues import NEW, QUEUED, Policy, Route, Task, TaskFuture, TaskQueue

__all__ = ["Admission", "shutting_down"]

SHUTTING_DOWN = "task manager is shutting down"


def shutting_down() -> ManagerStoppedError:
    return ManagerStoppedError(SHUTTING_DOWN)


def _not_entered() -> int | None:
    return None


class Admission:
    """The two queues, their bounds, and the line of callers waiting for room.

    Tasks are admitted only while ``open`` (the manager runs). A bounded queue admits a
    newcomer only when it has room and nobody stands in its line; the awaiting forms
    join the line (:meth:`wait_for_room`), the others are refused.
    """

    __slots__ = (
        "_arrived", "_idle", "_loop", "_loop_thread", "_retry_backoff", "_task_retries",
        "_trace", "main", "open", "priority", "routes",
    )  # fmt: skip

    def __init__(
        self,
        *,
        max_queue_size: int,
        task_retries: int,
        retry_backoff: Callable[[int], float],
        arrived: Callable[[float], None],
        idle: IdleWorkers,
        trace: Callable[[bool], Any] | None = None,
    ) -> None:
        self.priority = TaskQueue("priority", max_queue_size)
        self.main = TaskQueue("main", max_queue_size)
        self.open = False
        self._task_retries = task_retries
        self._retry_backoff = retry_backoff
        self._arrived = arrived
        self._idle = idle
        self._trace = trace  # begins a task's trace (Config.tracer), in the caller's context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: Callable[[], int | None] = _not_entered
        # Where a task submitted without its own retries or backoff goes, and how it
        # is re-run: routes[(2 if priority else 0) + (1 if once else 0)].
        policies = [Policy(once, task_retries, retry_backoff) for once in (False, True)]
        self.routes: tuple[Route, ...] = tuple(
            (queue, policy) for queue in (self.main, self.priority) for policy in policies
        )

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tie admission to the manager's loop; call from it, while it runs."""
        self._loop = loop
        self._loop_thread = loop_thread(loop)

    @property
    def queues(self) -> tuple[TaskQueue, TaskQueue]:
        """Both queues, in the order the workers read them."""
        return (self.priority, self.main)

    @property
    def backlog(self) -> int:
        """Live tasks in both queues."""
        return self.priority.live + self.main.live

    def route(
        self,
        priority: bool,
        once: bool,
        retries: int | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> Route:
        """The queue and re-run policy for these options.

        Raises:
            ValueError: ``retries`` is not an int >= 0.
            TypeError: ``backoff`` is not callable.
        """
        if retries is None and backoff is None:
            return self.routes[(2 if priority else 0) + (1 if once else 0)]
        if retries is None:
            retries = self._task_retries
        elif isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if backoff is None:
            backoff = self._retry_backoff
        elif not callable(backoff):
            raise TypeError(f"backoff must be callable, got {backoff!r}")
        return (self.priority if priority else self.main, Policy(once, retries, backoff))

    def offer(self, fn: Callable[[R], Awaitable[E]], route: Route, watched: bool) -> Task[R, E]:
        """Build a task for ``route`` and queue it if there is room and nobody waits.

        The task's state says which: QUEUED, or NEW for the caller to wait for room; a
        ``watched`` task that cannot be queued is refused through its future.
        Programming errors raise at once: they are no task's outcome. A ``watched``
        task's future goes to its holder, who may cancel it: see TaskFuture. The
        awaiting forms and map() handle their cancellations.
        """
        if self._loop_thread() != get_ident() or not callable(fn):
            self.check_call(fn)
        queue, policy = route
        task: Task[R, E] = Task()
        future: asyncio.Future[E]
        if watched:
            watched_future: TaskFuture[E] = TaskFuture(loop=self._loop)
            watched_future.task = task
            future = watched_future
        else:
            # Future(loop=...) is loop.create_future() without its Python frame.
            future = _Future(loop=self._loop)
        task.fn = fn
        task.future = future
        task.home = task.queue = queue
        task.policy = policy
        task.started_at = 0.0
        task.errors = None
        task.unhealthy_failures = 0
        task.trace = None
        if self.open and not queue.line and queue.live < queue.limit:
            # accept(), inlined on the hot path
            task.state = QUEUED
            task.queued_at = now = _monotonic()
            queue.items.append(task)
            queue.live += 1
            self._arrived(now)
            if self._trace is not None:
                task.trace = self._trace(queue is self.priority)
            idle = self._idle
            if idle.base or idle.burst:
                idle.wake_one()
        else:
            task.state = NEW
            task.queued_at = 0.0
            if watched:  # a future's holder cannot wait for room: refuse it
                future.set_exception(
                    shutting_down()
                    if not self.open
                    else QueueFullError(
                        f"{queue.name} queue is full (max_queue_size={queue.maxsize})"
                    )
                )
        return task

    def accept(self, task: Task[Any, Any]) -> None:
        """Queue an admitted task and wake a worker for it (see offer for the hot path)."""
        task.state = QUEUED
        task.queued_at = now = _monotonic()
        queue = task.home
        queue.items.append(task)
        queue.live += 1
        self._arrived(now)
        if self._trace is not None:
            task.trace = self._trace(queue is self.priority)
        if self._idle.base or self._idle.burst:
            self._idle.wake_one()

    async def wait_for_room(self, task: Task[Any, Any]) -> None:
        """Wait in ``task``'s queue's line for room, first come first served, then queue it.

        Raises:
            ManagerStoppedError: shutdown began before the task was queued.
        """
        queue = task.home
        if not self.open:
            raise shutting_down()
        if queue.full() or queue.line:
            assert self._loop is not None
            waiter = self._loop.create_future()
            queue.line.append(waiter)
            try:
                while True:
                    try:
                        await waiter  # raises ManagerStoppedError once shutdown begins
                    finally:
                        queue.leave_line(waiter)
                    if not self.open:  # given room just as shutdown began
                        raise shutting_down()
                    if not queue.full():
                        break
                    waiter = self._loop.create_future()
                    queue.line.appendleft(waiter)  # keep our place in the line
            except asyncio.CancelledError:
                if self.open and not queue.full():
                    queue.wake_next_in_line()  # pass on the room we were given, or that was skipped
                raise
        self.accept(task)
        if queue.line and not queue.full():
            queue.wake_next_in_line()

    def requeue(self, task: Task[Any, Any], queue: TaskQueue) -> None:
        """Put an accepted task back in ``queue`` (past its bound) and wake a worker."""
        task.queued_at = _monotonic()
        queue.push(task)
        self._idle.wake_one()

    def close(self) -> None:
        """Admit nothing more; refuse every caller waiting for room."""
        self.open = False
        for queue in self.queues:
            queue.refuse_line(shutting_down)

    def drain(self) -> list[Task[Any, Any]]:
        """Empty both queues; return their live tasks."""
        return [*self.priority.drain(), *self.main.drain()]

    def check_call(self, fn: object) -> None:
        """Raise the error that explains why ``fn`` cannot be submitted from here."""
        if not callable(fn):
            if inspect.iscoroutine(fn):
                fn.close()  # it will never run: spare the "never awaited" warning
                raise TypeError(
                    f"fn must be callable, got {fn!r}: pass the function, not a called coroutine"
                )
            raise TypeError(f"fn must be callable, got {fn!r}")
        loop = running_loop()
        if loop is not None and loop is self._loop:
            return
        hint = (
            "; from another thread or event loop, use manager.submit_threadsafe(fn), which"
            " returns a concurrent.futures.Future"
        )
        if loop is None:
            raise RuntimeError(
                "TaskManager methods must be called from the event loop the manager runs in" + hint
            )
        if self._loop is None:
            raise RuntimeError("the task manager is not running: enter it with 'async with' first")
        raise RuntimeError("the task manager runs in a different event loop" + hint)
