"""Submission: the core (``submit`` and its waiting form) and the twelve ``queue_task*`` forms.

The awaiting forms queue through ``_offer`` (waiting for room if need be) and await the
result; the callback and future forms are one-line wrappers over :meth:`submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic

from ._engine.admission import Admission
from ._engine.callbacks import Callbacks
from ._engine.outcomes import KILLED
from ._engine.queues import NEW, Route, Task
from ._engine.run import RunState
from ._exceptions import ManagerStoppedError
from ._types import Callback, R, Result, T

__all__ = ["SubmissionForms"]


def _awaiting_form(name: str, priority: bool, once: bool, doc: str) -> Any:
    """Build one of the four awaiting forms, which differ only in queue and policy.

    Each is its own coroutine function rather than a wrapper around a shared
    coroutine, so an awaited task costs one coroutine, not two.
    """
    index = (2 if priority else 0) + (1 if once else 0)

    async def form(self: SubmissionForms[Any, Any], fn: Callable[[Any], Awaitable[Any]]) -> Any:
        # The waiting form of submit(): wait for room if need be, then for the result.
        task = self._offer(fn, self._routes[index], False)
        if task.state == NEW:
            await self._admission.wait_for_room(task)
        try:
            return await task.future
        except asyncio.CancelledError:
            if task.future.cancelled():  # our caller was cancelled: drop or stop the task
                self._forget(task)
            raise

    form.__name__ = name
    form.__qualname__ = f"TaskManager.{name}"
    form.__doc__ = doc
    # What help() and inspect.signature() show: the per-call types of the stubs below.
    form.__annotations__ = {"fn": "Callable[[R], Awaitable[T]]", "return": "T"}
    return form


def _copy(done: asyncio.Future[T], answer: concurrent.futures.Future[T]) -> None:
    """Hand an asyncio future's outcome to a concurrent one (submit_threadsafe)."""
    if done.cancelled():
        answer.cancel()
    elif (error := done.exception()) is not None:
        _settle(answer, exc=error)
    else:
        _settle(answer, result=done.result())


def _settle(
    answer: concurrent.futures.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    """Answer ``answer`` unless it was cancelled meanwhile (from its own thread)."""
    try:
        if exc is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


class SubmissionForms(Generic[R, Result]):
    """The submission methods of :class:`~tasker_aio.TaskManager`, over its core."""

    # Set by TaskManager.__init__: the engine parts and the hot path's bound calls.
    _run: RunState
    _admission: Admission
    _callbacks: Callbacks
    _offer: Callable[[Callable[[Any], Awaitable[Any]], Route, bool], Task[Any, Any]]
    _routes: tuple[Route, ...]
    _forget: Callable[[Task[Any, Any]], None]

    def submit(
        self,
        fn: Callable[[R], Awaitable[T]],
        *,
        priority: bool = False,
        once: bool = False,
        retries: int | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> asyncio.Future[T]:
        """Queue ``fn`` and return its future at once: the core of every submission.

        Never raises for a task-level problem: the result, the task's exception,
        ``ManagerStoppedError`` or ``QueueFullError`` all arrive through the future.
        Cancelling the future discards the task if it is still queued, or cancels it
        if it is running.

        Args:
            fn: ``fn(resource)`` returning an awaitable.
            priority: use the priority queue.
            once: never re-run it, whatever the failure.
            retries: re-runs after healthy failures; None means ``Config.task_retries``.
            backoff: ``attempt -> seconds`` before a healthy re-run; None means
                ``Config.retry_backoff``.

        Raises:
            TypeError: ``fn`` or ``backoff`` is not callable.
            ValueError: ``retries`` is not an int >= 0.
            RuntimeError: called outside the manager's event loop, or before it started.
        """
        if retries is None and backoff is None:
            # Admission.route(), inlined: the future forms come through here.
            route = self._routes[(2 if priority else 0) + (1 if once else 0)]
        else:
            route = self._admission.route(priority, once, retries, backoff)
        return self._offer(fn, route, True).future

    def submit_threadsafe(
        self, fn: Callable[[R], Awaitable[T]], *, priority: bool = False, once: bool = False
    ) -> concurrent.futures.Future[T]:
        """Queue ``fn`` from any thread; its answer comes in a ``concurrent.futures.Future``.

        For sync code (a thread pool, a Django or Flask view, a script) while the manager
        runs in its event loop in another thread: ``submit_threadsafe(fn).result()``
        waits for the answer. Cancelling the returned future discards the task if it is
        still queued, or cancels it if it is running. Once shutdown has begun, the
        future is answered ``ManagerStoppedError``; a full queue answers
        ``QueueFullError``, as :meth:`submit` does.

        Args:
            fn: ``fn(resource)`` returning an awaitable.
            priority: use the priority queue.
            once: never re-run it, whatever the failure.

        Raises:
            TypeError: ``fn`` is not callable.
            RuntimeError: the manager was never entered.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        answer: concurrent.futures.Future[T] = concurrent.futures.Future()
        loop = self._run.loop
        if loop is None:
            raise RuntimeError("the task manager is not running: enter it with 'async with' first")

        def on_loop() -> None:
            if answer.cancelled():
                return  # cancelled before it reached the loop: never queued
            try:
                future = self.submit(fn, priority=priority, once=once)
            except BaseException as exc:
                _settle(answer, exc=exc)
                return
            future.add_done_callback(lambda done: _copy(done, answer))
            answer.add_done_callback(
                lambda done: done.cancelled() and loop.call_soon_threadsafe(future.cancel)
            )

        try:
            loop.call_soon_threadsafe(on_loop)
        except RuntimeError:  # the loop is closed: the manager is long gone
            _settle(answer, exc=ManagerStoppedError(KILLED))
        return answer

    def _with_callback(
        self,
        fn: Callable[[R], Awaitable[T]],
        callback: Callback[T],
        priority: bool,
        once: bool,
    ) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self._callbacks.attach(self.submit(fn, priority=priority, once=once), callback)

    # Awaiting forms: wait for room in a full queue, then for the result.

    # Each is generated by _awaiting_form; the stubs give type checkers their types.
    if TYPE_CHECKING:

        async def queue_task(self, fn: Callable[[R], Awaitable[T]]) -> T:
            """Queue ``fn`` on the main queue and return its result (or raise its error).

            Waits for room if the queue is full. Cancelling the caller discards the task
            if it is still queued, or cancels it if it is running.

            Raises:
                ManagerStoppedError: shutdown began before it was queued, or kill() ran.
                MaxRetriesExceededError: it failed after re-runs, or unhealthily.
            """
            ...

        async def queue_task_with_priority(self, fn: Callable[[R], Awaitable[T]]) -> T:
            """Queue ``fn`` on the priority queue and return its result."""
            ...

        async def queue_task_once(self, fn: Callable[[R], Awaitable[T]]) -> T:
            """Queue ``fn`` on the main queue, never re-run, and return its result."""
            ...

        async def queue_task_with_priority_once(self, fn: Callable[[R], Awaitable[T]]) -> T:
            """Queue ``fn`` on the priority queue, never re-run, and return its result."""
            ...

    else:
        queue_task = _awaiting_form(
            "queue_task",
            False,
            False,
            "Queue ``fn`` on the main queue and return its result (or raise its error).",
        )
        queue_task_with_priority = _awaiting_form(
            "queue_task_with_priority",
            True,
            False,
            "Queue ``fn`` on the priority queue and return its result.",
        )
        queue_task_once = _awaiting_form(
            "queue_task_once",
            False,
            True,
            "Queue ``fn`` on the main queue, never re-run, and return its result.",
        )
        queue_task_with_priority_once = _awaiting_form(
            "queue_task_with_priority_once",
            True,
            True,
            "Queue ``fn`` on the priority queue, never re-run, and return its result.",
        )

    # Callback forms: return None at once; callback(result, error) later.

    def queue_task_with_callback(
        self, fn: Callable[[R], Awaitable[T]], callback: Callback[T]
    ) -> None:
        """Queue ``fn`` on the main queue; ``callback(result, error)`` gets the outcome."""
        self._with_callback(fn, callback, priority=False, once=False)

    def queue_task_with_priority_with_callback(
        self, fn: Callable[[R], Awaitable[T]], callback: Callback[T]
    ) -> None:
        """Queue ``fn`` on the priority queue; ``callback`` gets the outcome."""
        self._with_callback(fn, callback, priority=True, once=False)

    def queue_task_once_with_callback(
        self, fn: Callable[[R], Awaitable[T]], callback: Callback[T]
    ) -> None:
        """Queue ``fn`` on the main queue, never re-run; ``callback`` gets the outcome."""
        self._with_callback(fn, callback, priority=False, once=True)

    def queue_task_with_priority_once_with_callback(
        self, fn: Callable[[R], Awaitable[T]], callback: Callback[T]
    ) -> None:
        """Queue ``fn`` on the priority queue, never re-run; ``callback`` gets the outcome."""
        self._with_callback(fn, callback, priority=True, once=True)

    # Future forms: return an asyncio.Future at once.

    def queue_task_async(self, fn: Callable[[R], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue ``fn`` on the main queue and return its future."""
        return self.submit(fn)

    def queue_task_with_priority_async(self, fn: Callable[[R], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue ``fn`` on the priority queue and return its future."""
        return self.submit(fn, priority=True)

    def queue_task_once_async(self, fn: Callable[[R], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue ``fn`` on the main queue, never re-run, and return its future."""
        return self.submit(fn, once=True)

    def queue_task_with_priority_once_async(
        self, fn: Callable[[R], Awaitable[T]]
    ) -> asyncio.Future[T]:
        """Queue ``fn`` on the priority queue, never re-run, and return its future."""
        return self.submit(fn, priority=True, once=True)
