"""TaskManager: lifecycle, task group, the one submission core, stop and kill."""

from __future__ import annotations

import asyncio
import inspect
import time
from asyncio import Future as _Future
from asyncio import _get_running_loop
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from threading import get_ident
from time import monotonic as _monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal

import anyio
from anyio.abc import TaskGroup

from ._burst import run_burst
from ._config import Config, resolve
from ._exceptions import (
    ManagerStoppedError,
    MaxRetriesExceededError,
    QueueFullError,
    ResourceCreationError,
)
from ._map import MapIterator
from ._metrics import TaskMetrics, TaskStats, outcome, recorders
from ._pool import ResourcePool
from ._queue import (
    DISCARDED,
    DONE,
    NEW,
    QUEUED,
    RUNNING,
    WAITING,
    Policy,
    Route,
    Task,
    TaskQueue,
    WatchedFuture,
    route_index,
)
from ._types import Callback, E, R, T
from ._worker import NO_RESOURCE, READY, Worker

__all__ = ["TaskManager"]

State = Literal["new", "running", "stopping", "stopped"]

_SHUTTING_DOWN = "task manager is shutting down"
_KILLED = "task manager was killed"
_CREATE_RETRY_FIRST = 0.05  # seconds before the first retry of a failed on_create
_CREATE_RETRY_CAP = 2.0  # the longest pause between on_create retries
# Seconds of back-to-back task running the workers share per event-loop turn: each
# worker yields after its share, so other coroutines wait a few ms at most.
_TURN_BUDGET = 0.001


def _awaiting_form(name: str, priority: bool, once: bool, doc: str) -> Any:
    """Build one of the four awaiting forms, which differ only in queue and policy.

    Each is its own coroutine function rather than a wrapper around a shared
    coroutine, so an awaited task costs one coroutine, not two.
    """

    async def form(self: TaskManager[Any, Any], fn: Callable[[Any], Awaitable[Any]]) -> Any:
        # The waiting form of submit(): wait for room if need be, then for the result.
        task = self._offer(fn, self._routes[index], False)
        if task.state == NEW:
            await self._admit_waiting(task)
        try:
            return await task.future
        except asyncio.CancelledError:
            if task.future.cancelled():  # our caller was cancelled: drop or stop the task
                self._forget(task)
            raise

    index = route_index(priority, once)
    form.__name__ = name
    form.__qualname__ = f"TaskManager.{name}"
    form.__doc__ = doc
    return form


def _shutting_down() -> ManagerStoppedError:
    return ManagerStoppedError(_SHUTTING_DOWN)


class TaskManager(Generic[R, E]):
    """Runs tasks on workers that each hold one long-lived resource.

    Use it as an async context manager; it runs once::

        async with TaskManager[Conn, int](config) as manager:
            value = await manager.queue_task(lambda conn: conn.fetch_one())

    Every submission method goes through one core (:meth:`submit` and its waiting
    form); every caller gets an answer: a value, an exception or
    :class:`ManagerStoppedError`.
    """

    def __init__(self, config: Config[R]) -> None:
        """Validate ``config``; nothing is created until the manager is entered.

        Raises:
            ConfigError: the first invalid field of ``config``.
        """
        self._settings = resolve(config)
        settings = self._settings
        self._logger = settings.logger
        self._collector = settings.collector
        self._arrived, self._completed, self._failed, self._tidy = recorders(settings.collector)
        self._state: State = "new"
        self._entered = False
        self._killed = False
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._thread: int | None = None  # the thread running the loop, once entered
        self._loop_thread: Any = None  # the loop, if it keeps _thread_id: see _offer
        self._tg: TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None  # the task the group lives in
        self._priority = TaskQueue(self, "priority", settings.max_queue_size)
        self._main = TaskQueue(self, "main", settings.max_queue_size)
        # Where a task submitted without its own retries or backoff goes, and how it
        # is re-run: _routes[route_index(priority, once)].
        policies = [
            Policy(once, settings.task_retries, settings.retry_backoff) for once in (False, True)
        ]
        self._routes: tuple[Route, ...] = tuple(
            (queue, policy) for queue in (self._main, self._priority) for policy in policies
        )
        self._workers: list[Worker[R, E]] = []
        self._yield_after = _TURN_BUDGET  # each worker's share, see _spawn_worker
        self._turns = 0  # event-loop turns seen by _count_turn, see _watch_turns
        self._turn_watched = False
        # Idle workers, woken last-in first-out and base workers before burst ones, so
        # spare burst workers stay idle long enough to be retired.
        self._idle: deque[Worker[R, E]] = deque()
        self._idle_burst: deque[Worker[R, E]] = deque()
        # Failed healthily and waiting out a backoff: the timer that re-queues each.
        self._waiting: dict[Task[R, E], asyncio.TimerHandle] = {}
        self._pool: ResourcePool[R, E] = ResourcePool(self)
        self._scopes: set[anyio.CancelScope] = set()  # what kill() cancels
        self._holders = 0  # workers, run_task calls and pool refills still under way
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._burst_scope: anyio.CancelScope | None = None
        self._shutdown_started = asyncio.Event()
        self._quiet = asyncio.Event()
        self._stopped = asyncio.Event()
        self._pending_shutdown: Literal["stop", "kill"] | None = None  # asked during entry

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<TaskManager state={self._state} workers={stats.active_workers}"
            f"/{self._settings.max_worker_count} queued={stats.queued_tasks}"
            f" priority={stats.priority_tasks} running={stats.running_tasks}>"
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def state(self) -> State:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        return self._state

    async def __aenter__(self) -> TaskManager[R, E]:
        """Create the pool and base workers; return once every base worker is ready.

        Raises:
            ResourceCreationError: an ``on_create`` failed; whatever was created is
                destroyed first.
            RuntimeError: the manager was entered before.
        """
        if self._entered or self._state != "new":
            raise RuntimeError("a TaskManager runs once; create a new one to start again")
        self._entered = True
        self._loop = loop = asyncio.get_running_loop()
        self._thread = get_ident()
        if isinstance(loop, asyncio.BaseEventLoop):
            self._loop_thread = loop
        settings = self._settings
        try:
            resources = await self._create_initial(
                settings.resource_pool_size + settings.worker_count
            )
        except BaseException:
            self._state = "stopped"
            self._stopped.set()
            raise
        # The task group lives in a task of its own, so the manager may be entered and
        # left by different tasks (aiohttp's cleanup_ctx, pytest fixtures) and the
        # caller's body does not run inside the group's cancel scope.
        ready: asyncio.Future[TaskGroup] = self._loop.create_future()
        self._supervisor = self._loop.create_task(self._supervise(ready))
        self._supervisor.add_done_callback(self._supervisor_done)
        try:
            tg = self._tg = await asyncio.shield(ready)
        except BaseException:  # cancelled before the group started: give it all back
            self._state = "stopped"
            self._stopped.set()
            await self._destroy_all(resources)
            raise
        self._pool.fill(resources[: settings.resource_pool_size])
        for resource in resources[settings.resource_pool_size :]:
            self._spawn_worker(burst=False, resource=resource)
        if settings.burst_interval is not None:
            tg.start_soon(run_burst, self)
        self._state = "running"
        self._logger.info(
            "task manager started: %d workers (max %d), %d pooled resources",
            settings.worker_count,
            settings.max_worker_count,
            settings.resource_pool_size,
        )
        if self._pending_shutdown is not None:  # stop() or kill() came while we started
            self._begin_shutdown()
            if self._pending_shutdown == "kill":
                self._kill_now()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if exc_type is None:
                await self.stop()
            else:
                with anyio.CancelScope(shield=True):
                    await self.kill()
        except BaseException:  # cancelled while draining: escalate
            with anyio.CancelScope(shield=True):
                await self.kill()
            raise
        if self._supervisor is not None:
            await self._supervisor  # done once stopped; raises if the group failed
        await self._finish_callbacks()
        return None

    async def _supervise(self, ready: asyncio.Future[TaskGroup]) -> None:
        async with anyio.create_task_group() as tg:
            ready.set_result(tg)
            await self._stopped.wait()

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._logger.error("the task manager's task group failed: %r", task.exception())

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the spec's API
        """Shut down gracefully: finish everything accepted, then destroy every resource.

        New submissions fail with ``ManagerStoppedError``; running and queued tasks run
        to completion; tasks waiting out a retry backoff are re-queued at once.
        Idempotent; concurrent calls wait for the same shutdown.

        Args:
            timeout: seconds to wait for the drain before escalating to :meth:`kill`.
        """
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not timeout >= 0  # also refuses NaN
        ):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        self._check_not_inside_a_task("stop")
        if self._stop_unstarted("stop"):
            await self._stopped.wait()
            return
        self._begin_shutdown()
        if timeout is None:
            await self._stopped.wait()
            return
        with anyio.move_on_after(timeout):
            await self._stopped.wait()
        if not self._stopped.is_set():
            self._logger.warning("stop() did not finish within %ss; killing", timeout)
            await self.kill()

    async def kill(self) -> None:
        """Shut down now: cancel running tasks, drop queued ones, destroy every resource.

        Every caller, future and callback of a task that did not complete gets
        ``ManagerStoppedError("task manager was killed")``. Idempotent; escalates a
        :meth:`stop` in progress.
        """
        if self._stop_unstarted("kill"):
            await self._stopped.wait()
            return
        self._begin_shutdown()
        self._kill_now()
        await self._stopped.wait()

    def _stop_unstarted(self, how: Literal["stop", "kill"]) -> bool:
        """Handle a shutdown before the manager runs; True if there is nothing more to do."""
        if self._state != "new":
            return False
        if not self._entered:
            self._state = "stopped"
            self._stopped.set()
        elif self._pending_shutdown != "kill":
            self._pending_shutdown = how  # __aenter__ applies it once the workers exist
        return True

    def _check_not_inside_a_task(self, method: str) -> None:
        current = asyncio.current_task()
        if current is not None and any(w.task is current for w in self._workers):
            raise RuntimeError(
                f"{method}() awaited inside one of this manager's tasks would wait for"
                f" itself; schedule it instead: asyncio.create_task(manager.{method}())"
            )

    def _begin_shutdown(self) -> None:
        if self._state != "running":
            return
        self._state = "stopping"
        self._logger.info("task manager stopping")
        self._shutdown_started.set()
        for queue in (self._priority, self._main):
            queue.fail_putters(_shutting_down)
        if self._burst_scope is not None:
            self._burst_scope.cancel()
        for task in list(self._waiting):
            self._requeue(task)
        idle = [*self._idle, *self._idle_burst]
        self._idle.clear()
        self._idle_burst.clear()
        for worker in idle:  # let idle workers see the drain and leave
            if worker.waiter is not None and not worker.waiter.done():
                worker.waiter.set_result(None)
        assert self._tg is not None
        self._tg.start_soon(self._finish_shutdown)

    def _kill_now(self) -> None:
        if self._killed:
            return
        self._killed = True
        self._logger.info("task manager killed")
        for queue in (self._priority, self._main):
            for task in queue.drain():
                self._answer_killed(task)
        for task in list(self._waiting):
            self._answer_killed(task)
        for worker in self._workers:
            if worker.current is not None:
                self._answer_killed(worker.current)
        for scope in list(self._scopes):
            scope.cancel()

    async def _finish_shutdown(self) -> None:
        with anyio.CancelScope(shield=True):
            self._check_quiet()
            await self._quiet.wait()
            for queue in (self._priority, self._main):  # nothing can run these any more
                for task in queue.drain():
                    self._answer_killed(task)
            await self._pool.close()
            self._state = "stopped"
            self._logger.info("task manager stopped")
            self._stopped.set()

    async def _finish_callbacks(self) -> None:
        """Wait for the callbacks of every answered task, including async ones."""
        try:
            while True:
                await asyncio.sleep(0)  # let pending future callbacks run
                if not self._callback_tasks:
                    return
                await asyncio.wait(list(self._callback_tasks))
        except BaseException:
            for task in self._callback_tasks:
                task.cancel()
            raise

    def _check_quiet(self) -> None:
        if self._holders == 0 and self._state == "stopping":
            self._quiet.set()

    @contextmanager
    def _killable(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope that kill() cancels."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            if self._killed:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    # ---------------------------------------------------------------- submission

    def _offer(
        self,
        fn: Callable[[R], Awaitable[E]],
        route: Route,
        watched: bool,
    ) -> Task[R, E]:
        """Build a task for ``route`` and queue it if there is room and nobody waits.

        The task's state says which: QUEUED, or NEW for the caller to wait for room;
        a ``watched`` task that cannot be queued is refused through its future.
        Programming errors raise at once: they are no task's outcome. A ``watched``
        task's future goes to its holder, who may cancel it: see WatchedFuture. The
        awaiting forms and map() handle their cancellations.
        """
        # On CPython 3.11 get_running_loop() makes a getpid() system call. A thread
        # runs one loop at a time, so "our loop runs, in this thread" says the same:
        # asyncio's own loops keep the thread running them in _thread_id (None while
        # stopped), others (uvloop) are asked. _check_call says exactly what is wrong.
        loop_thread = self._loop_thread
        if (
            loop_thread._thread_id != get_ident()
            if loop_thread is not None
            else self._thread != get_ident() or not self._loop.is_running()
        ) or not callable(fn):
            self._check_call(fn)
        queue, policy = route
        task: Task[R, E] = Task()
        future: asyncio.Future[E]
        if watched:
            watched_future: WatchedFuture[E] = WatchedFuture(loop=self._loop)
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
        if self._state == "running" and not queue.putters and queue.live < queue.limit:
            # _accept, inlined on the hot path
            task.state = QUEUED
            task.queued_at = now = _monotonic()
            queue.items.append(task)
            queue.live += 1
            self._arrived(now)
            if self._idle or self._idle_burst:
                self._wake_one()
        else:
            task.state = NEW
            task.queued_at = 0.0
            if watched:  # a future's holder cannot wait for room: refuse it
                future.set_exception(
                    _shutting_down()
                    if self._state != "running"
                    else QueueFullError(
                        f"{queue.name} queue is full (max_queue_size={queue.maxsize})"
                    )
                )
        return task

    def _policy(
        self, once: bool, retries: int | None, backoff: Callable[[int], float] | None
    ) -> Policy:
        if retries is None:
            retries = self._settings.task_retries
        elif isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if backoff is None:
            backoff = self._settings.retry_backoff
        elif not callable(backoff):
            raise TypeError(f"backoff must be callable, got {backoff!r}")
        return Policy(once, retries, backoff)

    def _check_call(self, fn: object) -> None:
        if not callable(fn):
            if inspect.iscoroutine(fn):
                fn.close()  # it will never run: spare the "never awaited" warning
                raise TypeError(
                    f"fn must be callable, got {fn!r}: pass the function, not a called coroutine"
                )
            raise TypeError(f"fn must be callable, got {fn!r}")
        loop = _get_running_loop()
        if loop is None or loop is not self._loop:
            self._wrong_loop()

    def _wrong_loop(self) -> None:
        if _get_running_loop() is None:
            raise RuntimeError(
                "TaskManager methods must be called from the event loop the manager runs in"
            )
        if self._state == "new":
            raise RuntimeError("the task manager is not running: enter it with 'async with' first")
        raise RuntimeError("the task manager runs in a different event loop")

    def _accept(self, task: Task[R, E]) -> None:
        """Queue an admitted task and wake a worker for it (see _offer for the hot path)."""
        task.state = QUEUED
        task.queued_at = now = _monotonic()
        queue = task.home
        queue.items.append(task)
        queue.live += 1
        self._arrived(now)
        if self._idle or self._idle_burst:
            self._wake_one()

    def submit(
        self,
        fn: Callable[[R], Awaitable[E]],
        *,
        priority: bool = False,
        once: bool = False,
        retries: int | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> asyncio.Future[E]:
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
            # route_index(), inlined: the future forms come through here.
            route = self._routes[(2 if priority else 0) + (1 if once else 0)]
        else:
            queue = self._priority if priority else self._main
            route = (queue, self._policy(once, retries, backoff))
        return self._offer(fn, route, True).future

    async def _admit_waiting(self, task: Task[R, E]) -> None:
        """The waiting form of :meth:`submit`'s admission: wait for room, first come first."""
        queue = task.home
        if self._state != "running":
            raise _shutting_down()
        if queue.full() or queue.putters:
            waiter = self._loop.create_future()
            queue.putters.append(waiter)
            try:
                while True:
                    try:
                        await waiter  # raises ManagerStoppedError once shutdown begins
                    finally:
                        queue.leave_line(waiter)
                    if self._state != "running":  # given room just as shutdown began
                        raise _shutting_down()
                    if not queue.full():
                        break
                    waiter = self._loop.create_future()
                    queue.putters.appendleft(waiter)  # keep our place in the line
            except asyncio.CancelledError:
                if self._state == "running" and not queue.full():
                    queue.wake_putter()  # pass on the room we were given, or that was skipped
                raise
        self._accept(task)
        if queue.putters and not queue.full():
            queue.wake_putter()

    def _with_callback(
        self,
        fn: Callable[[R], Awaitable[E]],
        callback: Callback[E],
        priority: bool,
        once: bool,
    ) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        future = self.submit(fn, priority=priority, once=once)
        future.add_done_callback(lambda f: self._deliver(callback, f))

    def _deliver(self, callback: Callback[E], future: asyncio.Future[E]) -> None:
        result: E | None = None
        error: BaseException | None
        if future.cancelled():
            error = asyncio.CancelledError()
        else:
            error = future.exception()
            if error is None:
                result = future.result()
        try:
            returned = callback(result, error)
            if inspect.isawaitable(returned):
                self._spawn_callback(returned, callback)
        except Exception as exc:
            self._logger.error("task callback %r raised %r", callback, exc)

    def _spawn_callback(self, awaitable: Awaitable[Any], callback: object) -> None:
        # Future callbacks run outside any task, where anyio cannot start one; so the
        # manager keeps these tasks itself, and shutdown waits for them.
        async def finish() -> None:
            try:
                await awaitable
            except Exception as exc:
                self._logger.error("task callback %r raised %r", callback, exc)

        task = self._loop.create_task(finish())
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    # Awaiting forms: wait for room in a full queue, then for the result.

    # Each is generated by _awaiting_form; the stubs give type checkers their types.
    if TYPE_CHECKING:

        async def queue_task(self, fn: Callable[[R], Awaitable[E]]) -> E: ...
        async def queue_task_with_priority(self, fn: Callable[[R], Awaitable[E]]) -> E: ...
        async def queue_task_once(self, fn: Callable[[R], Awaitable[E]]) -> E: ...
        async def queue_task_with_priority_once(self, fn: Callable[[R], Awaitable[E]]) -> E: ...

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
        self, fn: Callable[[R], Awaitable[E]], callback: Callback[E]
    ) -> None:
        """Queue ``fn`` on the main queue; ``callback(result, error)`` gets the outcome."""
        self._with_callback(fn, callback, priority=False, once=False)

    def queue_task_with_priority_with_callback(
        self, fn: Callable[[R], Awaitable[E]], callback: Callback[E]
    ) -> None:
        """Queue ``fn`` on the priority queue; ``callback`` gets the outcome."""
        self._with_callback(fn, callback, priority=True, once=False)

    def queue_task_once_with_callback(
        self, fn: Callable[[R], Awaitable[E]], callback: Callback[E]
    ) -> None:
        """Queue ``fn`` on the main queue, never re-run; ``callback`` gets the outcome."""
        self._with_callback(fn, callback, priority=False, once=True)

    def queue_task_with_priority_once_with_callback(
        self, fn: Callable[[R], Awaitable[E]], callback: Callback[E]
    ) -> None:
        """Queue ``fn`` on the priority queue, never re-run; ``callback`` gets the outcome."""
        self._with_callback(fn, callback, priority=True, once=True)

    # Future forms: return an asyncio.Future at once.

    def queue_task_async(self, fn: Callable[[R], Awaitable[E]]) -> asyncio.Future[E]:
        """Queue ``fn`` on the main queue and return its future."""
        return self.submit(fn)

    def queue_task_with_priority_async(self, fn: Callable[[R], Awaitable[E]]) -> asyncio.Future[E]:
        """Queue ``fn`` on the priority queue and return its future."""
        return self.submit(fn, priority=True)

    def queue_task_once_async(self, fn: Callable[[R], Awaitable[E]]) -> asyncio.Future[E]:
        """Queue ``fn`` on the main queue, never re-run, and return its future."""
        return self.submit(fn, once=True)

    def queue_task_with_priority_once_async(
        self, fn: Callable[[R], Awaitable[E]]
    ) -> asyncio.Future[E]:
        """Queue ``fn`` on the priority queue, never re-run, and return its future."""
        return self.submit(fn, priority=True, once=True)

    async def run_task(self, fn: Callable[[R], Awaitable[E]]) -> E:
        """Run ``fn`` now in the caller's task, bypassing the queues and the workers.

        It uses an idle pool resource if there is one, else a temporary resource that
        is destroyed afterwards. The task's exception propagates unchanged.

        Raises:
            ManagerStoppedError: shutdown has begun, or kill() cancelled the task.
            ResourceCreationError: the temporary resource could not be created.
        """
        self._check_call(fn)
        if self._state != "running":
            raise _shutting_down()
        return await self._pool.run(fn)

    def map(
        self,
        fn: Callable[[R, T], Awaitable[E]],
        items: Iterable[T] | AsyncIterable[T],
        *,
        priority: bool = False,
        ordered: bool = True,
        max_in_flight: int | None = None,
    ) -> MapIterator[R, T, E]:
        """Run ``fn(resource, item)`` for every item; iterate the results.

        Items are pulled lazily, with at most ``max_in_flight`` tasks submitted and
        not yet yielded (default ``2 * max_worker_count``), so an endless source runs
        in bounded memory. The first task error is raised at its position. Leaving the
        loop early cancels the tasks still in flight (at once when the iterator is
        dropped, or on ``await iterator.aclose()``).

        Args:
            fn: ``fn(resource, item)`` returning an awaitable.
            items: an iterable or async iterable.
            priority: use the priority queue.
            ordered: yield in input order (True) or completion order (False).
            max_in_flight: the bound on submitted, not yet yielded tasks.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if max_in_flight is None:
            max_in_flight = 2 * self._settings.max_worker_count
        elif (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        return MapIterator(self, fn, items, priority, ordered, max_in_flight)

    # ------------------------------------------------------------- task outcomes

    def _wake_one(self) -> None:
        for idle in (self._idle, self._idle_burst):
            while idle:
                waiter = idle.pop().waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                    return

    def _forget(self, task: Task[R, E]) -> None:
        """The caller cancelled ``task``'s future: drop it or interrupt it."""
        state = task.state
        if state == QUEUED:
            task.queue.discard(task)
        elif state == RUNNING:
            for worker in self._workers:
                if worker.current is task:
                    if worker.task is asyncio.current_task():
                        # Cancelled from inside its own fn: a worker cancelling itself
                        # would keep the cancel pending past uncancel(), so interrupt
                        # it from the loop instead.
                        self._loop.call_soon(self._forget, task)
                    else:
                        worker.interrupt()
                    break
        elif state == WAITING:
            self._end_wait(task)
            task.state = DONE
            self._record_failure(task)

    def _record_failure(self, task: Task[R, E]) -> None:
        now = time.monotonic()
        self._failed(outcome(task.queued_at, task.started_at or now, now))

    def _fail(self, task: Task[R, E], exc: BaseException) -> None:
        """Answer ``task`` with its final error (no retries left)."""
        task.state = DONE
        future = task.future
        if not future.done():
            errors = task.errors or [exc]
            error: BaseException = exc
            if len(errors) > 1 or task.unhealthy_failures:
                error = MaxRetriesExceededError(f"max retries exceeded: {exc}", tuple(errors))
                error.__cause__ = exc
            future.set_exception(error)
        self._record_failure(task)

    def _answer_killed(self, task: Task[R, E]) -> None:
        state = task.state
        if state in (DONE, DISCARDED):
            return
        ran = state == RUNNING or task.errors is not None
        if state == WAITING:
            self._end_wait(task)
        task.state = DONE
        future = task.future
        if not future.done():
            future.set_exception(ManagerStoppedError(_KILLED))
        if ran:
            self._record_failure(task)

    def _retry_now(self, task: Task[R, E]) -> None:
        """An unhealthy failure: straight to the end of the priority queue."""
        self._collector.record_retry()
        self._queue_again(task, self._priority)

    def _retry_later(self, task: Task[R, E]) -> None:
        """A healthy failure: back to its own queue after its backoff, holding no worker."""
        self._collector.record_retry()
        try:
            attempt = len(task.errors or ()) - task.unhealthy_failures
            delay = float(task.policy.backoff(attempt))
        except Exception as exc:
            self._logger.error(
                "retry backoff %r raised %r; retrying at once", task.policy.backoff, exc
            )
            delay = 0.0
        if task.future.done():  # its holder cancelled it from inside backoff()
            task.state = DONE
            self._record_failure(task)
            return
        if self._state == "running" and delay > 0:
            task.state = WAITING
            self._waiting[task] = self._loop.call_later(delay, self._requeue, task)
        else:
            self._requeue(task)

    def _end_wait(self, task: Task[R, E]) -> None:
        timer = self._waiting.pop(task, None)
        if timer is not None:
            timer.cancel()

    def _requeue(self, task: Task[R, E]) -> None:
        self._end_wait(task)
        self._queue_again(task, task.home)

    def _queue_again(self, task: Task[R, E], queue: TaskQueue) -> None:
        """Put an accepted task back in ``queue`` (past its bound) and wake a worker."""
        task.queued_at = time.monotonic()
        queue.push(task)
        self._wake_one()

    def _is_healthy(self, exc: BaseException) -> bool:
        check = self._settings.check_health
        if check is None:
            return True
        try:
            return bool(check(exc))
        except Exception as error:
            self._logger.error("check_health raised %r; treating %r as healthy", error, exc)
            return True

    @staticmethod
    def _task_error(fn: object, returned: object, exc: BaseException) -> BaseException:
        """Name what went wrong when a task function returned something un-awaitable."""
        if (
            type(exc) is TypeError
            and returned is not NO_RESOURCE
            and not inspect.isawaitable(returned)
        ):
            return TypeError(f"task function {fn!r} returned {returned!r}, not an awaitable")
        if isinstance(exc, StopIteration):  # a Future refuses StopIteration
            error = RuntimeError(f"task raised {exc!r}")
            error.__cause__ = exc
            return error
        return exc

    # ---------------------------------------------------------------- resources

    async def _make_resource(self) -> R:
        resource = self._settings.on_create()
        if inspect.isawaitable(resource):
            resource = await resource
        return resource  # type: ignore[no-any-return]

    async def _destroy(self, resource: R) -> None:
        """Run on_destroy to its end, even if the calling task is cancelled meanwhile.

        anyio's shield stops scope cancellations; a native ``Task.cancel()`` of the
        caller (say, of a run_task caller) is held back until on_destroy has finished,
        then re-raised. Errors are logged.
        """
        with anyio.CancelScope(shield=True):
            try:
                returned = self._settings.on_destroy(resource)
                if inspect.isawaitable(returned):
                    await _to_the_end(returned)
            except Exception as exc:
                self._logger.error("on_destroy failed for %r: %r", resource, exc)

    async def _destroy_all(self, resources: list[R]) -> None:
        """Destroy every resource; a cancellation meanwhile is re-raised at the end."""
        cancelled: BaseException | None = None
        for resource in resources:
            try:
                await self._destroy(resource)
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            raise cancelled

    async def _create_initial(self, count: int) -> list[R]:
        created: list[R] = []
        failures: list[Exception] = []

        async def create_one() -> None:
            try:
                created.append(await self._make_resource())
            except Exception as exc:
                failures.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(create_one)
        except BaseException:
            await self._destroy_all(created)
            raise
        if failures:
            await self._destroy_all(created)
            raise ResourceCreationError(
                f"failed to initialize resources: {failures[0]}"
            ) from failures[0]
        return created

    async def _create_with_retry(self, what: str, give_up: Callable[[], bool]) -> Any:
        """A new resource, retrying with capped backoff; NO_RESOURCE once ``give_up()``."""
        attempt = 0
        while True:
            try:
                return await self._make_resource()
            except Exception as exc:
                attempt += 1
                self._logger.error("on_create failed for a %s (attempt %d): %r", what, attempt, exc)
                if give_up():
                    return NO_RESOURCE
                delay = min(_CREATE_RETRY_CAP, _CREATE_RETRY_FIRST * 2 ** min(attempt - 1, 32))
                if self._state == "running":  # wake early when shutdown begins
                    with anyio.move_on_after(delay):
                        await self._shutdown_started.wait()
                else:
                    await anyio.sleep(delay)

    def _drained(self) -> bool:
        """Shutting down with nothing left to run: a worker may leave."""
        return self._state != "running" and not self._priority.live and not self._main.live

    # ------------------------------------------------------------------ workers

    def _spawn_worker(self, burst: bool, resource: Any = NO_RESOURCE) -> None:
        worker: Worker[R, E] = Worker(self, burst, resource)
        self._workers.append(worker)
        self._yield_after = _TURN_BUDGET / len(self._workers)
        self._holders += 1
        assert self._tg is not None
        self._tg.start_soon(worker.run)

    def _watch_turns(self) -> int:
        """The loop-turn count now; it moves once the loop has run its next callbacks.

        One callback per loop turn at most, and only while workers run: it tells a
        worker whether its run of tasks was broken by a turn of the loop.
        """
        if not self._turn_watched:
            self._turn_watched = True
            self._loop.call_soon(self._count_turn)
        return self._turns

    def _count_turn(self) -> None:
        self._turns += 1
        self._turn_watched = False

    def _worker_gone(self, worker: Worker[R, E]) -> None:
        self._workers.remove(worker)
        self._yield_after = _TURN_BUDGET / max(1, len(self._workers))
        self._holders -= 1
        self._check_quiet()

    def _retire(self, count: int, idle_for: float) -> int:
        """Retire up to ``count`` burst workers idle for ``idle_for`` s, newest first."""
        now = time.monotonic()
        retired = 0
        for worker in reversed(self._workers):
            if retired == count:
                break
            if worker.spare(now, idle_for):
                worker.retiring = True
                self._idle_burst.remove(worker)
                assert worker.waiter is not None
                worker.waiter.set_result(None)
                retired += 1
        return retired

    # ------------------------------------------------------------ introspection

    def stats(self) -> TaskStats:
        """A consistent snapshot of workers, queues, running tasks and idle resources."""
        base = burst = running = 0
        for worker in self._workers:  # counted here, not per task on the hot path
            if worker.phase == READY:
                if worker.burst:
                    burst += 1
                else:
                    base += 1
            if worker.current is not None:
                running += 1
        return TaskStats(
            base_workers=base,
            active_workers=base + burst,
            burst_workers=burst,
            queued_tasks=self._main.live,
            priority_tasks=self._priority.live,
            running_tasks=running,
            available_resources=self._pool.available,
        )

    def metrics(self) -> TaskMetrics:
        """The collector's metrics: latency percentiles, rates and totals."""
        return self._collector.metrics()


async def _to_the_end(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` to its end; a cancellation of our task meanwhile waits for it."""
    inner = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not inner.done():
        try:
            await asyncio.shield(inner)
        except asyncio.CancelledError as exc:
            if inner.cancelled():
                raise
            cancelled = exc  # keep waiting; re-raise once it is done
    if cancelled is not None:
        raise cancelled
    return inner.result()
