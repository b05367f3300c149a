"""TaskManager: the public facade that wires the engine's parts together.

The parts live in :mod:`tasker_aio._engine`; see its docstring for the path of a task.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._config import Config, resolve
from ._engine.admission import Admission, shutting_down
from ._engine.callbacks import Callbacks
from ._engine.care import Care
from ._engine.events import EventBus, EventStream
from ._engine.failures import HealthCheck
from ._engine.hooks import Hooks, SafeLogger
from ._engine.idle import IdleWorkers
from ._engine.lifecycle import Lifecycle
from ._engine.loop import call_in, hop
from ._engine.outcomes import Outcomes
from ._engine.pool import ResourcePool
from ._engine.recording import recorders
from ._engine.resources import Resources
from ._engine.run import RunState, State
from ._engine.scaling import ScalingActions, ScalingView
from ._engine.workers import WorkerSet
from ._forms import SubmissionForms
from ._map import MapIterator
from ._snapshots import TaskMetrics, TaskStats
from ._types import R, Result, T

Item = TypeVar("Item")  # an input item of map()

__all__ = ["TaskManager"]


class TaskManager(SubmissionForms[R, Result]):
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
        settings = resolve(config)
        self._settings = settings
        # Every call into user code (hooks, the logger, the collector) is contained.
        logger = SafeLogger(settings.logger)
        hooks = Hooks(logger)
        collector = settings.collector
        arrived, completed, failed, retried, tidy = recorders(collector, hooks)
        health = HealthCheck(settings.check_health, hooks)
        idle = IdleWorkers()
        self._events = events = EventBus()
        self._run = run = RunState(logger)
        self._admission = admission = Admission(
            max_queue_size=settings.max_queue_size,
            task_retries=settings.task_retries,
            retry_backoff=settings.retry_backoff,
            arrived=arrived,
            idle=idle,
            trace=(
                None
                if settings.tracer is None
                else partial(hooks.call, "tracer.begin", settings.tracer.begin, default=None)
            ),
        )
        self._outcomes = outcomes = Outcomes(
            admission=admission,
            run=run,
            failed=failed,
            retried=retried,
            health=health,
            max_retries=settings.max_retries,
            hooks=hooks,
            events=events,
            tracer=settings.tracer,
        )
        self._resources = resources = Resources[R](
            on_create=settings.on_create,
            on_destroy=settings.on_destroy,
            run=run,
            hooks=hooks,
            events=events,
            on_reset=settings.on_reset,
            check_resource=settings.check_resource,
            max_resources=settings.max_resources,
            create_backoff=settings.create_backoff,
            destroy_timeout=settings.destroy_timeout,
        )
        care = Care(settings, resources)
        self._pool = pool = ResourcePool(
            settings=settings,
            resources=resources,
            care=care,
            run=run,
            health=health,
            arrived=arrived,
            completed=completed,
            failed=failed,
            tidy=tidy,
        )
        self._workers = workers = WorkerSet(
            settings=settings,
            run=run,
            admission=admission,
            outcomes=outcomes,
            resources=resources,
            care=care,
            idle=idle,
            events=events,
            logger=logger,
            completed=completed,
            failed=failed,
            tidy=tidy,
        )
        scaling = (
            ScalingView(
                running=lambda: run.running,
                metrics=lambda: hooks.call("collector.metrics", collector.metrics, default=None),
                stats=self._stats,
                slots=self._slots,
            ),
            ScalingActions(add=workers.add_burst, retire=workers.retire),
        )
        self._callbacks = callbacks = Callbacks(hooks)
        self._lifecycle = Lifecycle(
            settings=settings,
            run=run,
            admission=admission,
            outcomes=outcomes,
            workers=workers,
            resources=resources,
            pool=pool,
            callbacks=callbacks,
            scaling=scaling,
            events=events,
            logger=logger,
        )
        # The hot path's calls, bound once.
        self._offer = admission.offer
        self._routes = admission.routes
        self._forget = outcomes.forget

    if not TYPE_CHECKING:

        def __class_getitem__(cls, params):
            # TaskManager[R] means TaskManager[R, Any]: results are typed per call.
            if not isinstance(params, tuple):
                params = (params, Any)
            return super().__class_getitem__(params)

    def __repr__(self) -> str:
        stats = self._stats()
        return (
            f"<TaskManager state={self._run.state} workers={stats.active_workers}"
            f"/{self._settings.max_worker_count} queued={stats.queued_tasks}"
            f" priority={stats.priority_tasks} running={stats.running_tasks}>"
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def state(self) -> State:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        return self._run.state

    async def __aenter__(self) -> TaskManager[R, Result]:
        """Create the pool and base workers; return once every base worker is ready.

        Raises:
            ResourceCreationError: an ``on_create`` failed; whatever was created is
                destroyed first.
            RuntimeError: the manager was entered before.
        """
        await self._lifecycle.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self._lifecycle.exit(failed=exc_type is not None)
        return None

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the spec's API
        """Shut down gracefully: finish everything accepted, then destroy every resource.

        New submissions fail with ``ManagerStoppedError``; running and queued tasks run
        to completion; tasks waiting out a retry backoff are re-queued at once.
        Idempotent; concurrent calls wait for the same shutdown.

        Args:
            timeout: seconds to wait for the drain before escalating to :meth:`kill`.

        May be awaited from any thread's event loop: it runs on the manager's loop.

        Raises:
            ValueError: ``timeout`` is not a number >= 0.
            RuntimeError: awaited inside one of this manager's own tasks (a queued task
                or a ``run_task`` function), where it would wait for itself.
        """
        await hop(self._run.loop, lambda: self._lifecycle.stop(timeout))

    async def kill(self) -> None:
        """Shut down now: cancel running tasks, drop queued ones, destroy every resource.

        Every caller, future and callback of a task that did not complete gets
        ``ManagerStoppedError("task manager was killed")``. Idempotent; escalates a
        :meth:`stop` in progress. May be awaited from any thread's event loop.
        """
        await hop(self._run.loop, self._lifecycle.kill)

    # ---------------------------------------------------------------- submission

    async def run_task(self, fn: Callable[[R], Awaitable[T]]) -> T:
        """Run ``fn`` now in the caller's task, bypassing the queues and the workers.

        It uses an idle pool resource if there is one, else a temporary resource that
        is destroyed afterwards. The task's exception propagates unchanged.

        Raises:
            ManagerStoppedError: shutdown has begun, or kill() cancelled the task.
            ResourceCreationError: the temporary resource could not be created.
        """
        self._admission.check_call(fn)
        if not self._run.running:
            raise shutting_down()
        return await self._pool.run(fn)

    def map(
        self,
        fn: Callable[[R, Item], Awaitable[T]],
        items: Iterable[Item] | AsyncIterable[Item],
        *,
        priority: bool = False,
        ordered: bool = True,
        max_in_flight: int | None = None,
    ) -> MapIterator[R, Item, T]:
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
        return MapIterator(
            self._admission, self._forget, fn, items, priority, ordered, max_in_flight
        )

    # ------------------------------------------------------------ introspection

    def stats(self) -> TaskStats:
        """A consistent snapshot of workers, queues, running tasks and idle resources.

        Safe from any thread: from another one, it is taken on the manager's loop.
        """
        return call_in(self._run.loop, self._stats)

    def _stats(self) -> TaskStats:
        counts = self._workers.counts()  # counted here, not per task on the hot path
        return TaskStats(
            base_workers=counts.base,
            active_workers=counts.base + counts.burst,
            burst_workers=counts.burst,
            queued_tasks=self._admission.main.live,
            priority_tasks=self._admission.priority.live,
            running_tasks=counts.running,
            available_resources=self._pool.available,
            live_resources=self._resources.slots.live,
        )

    def metrics(self) -> TaskMetrics:
        """The collector's metrics: latency percentiles, rates and totals.

        Safe from any thread: from another one, they are read on the manager's loop.
        """
        return call_in(self._run.loop, self._settings.collector.metrics)

    def events(self, *, buffer: int = 1000) -> EventStream:
        """Subscribe to lifecycle events: an async iterator, one per subscriber.

        Each subscriber sees every event from now on: workers added, retired and
        replaced, resources created, destroyed and failing their check, tasks retried
        and failed for good, scaling decisions, shutdown. It holds at most ``buffer``
        events; a subscriber that falls behind loses the oldest and is told how many
        (:class:`~tasker_aio.EventsLost`). It ends after
        :class:`~tasker_aio.ShutdownFinished`. With no subscriber, events cost nothing.

        Args:
            buffer: how many events to hold for a slow subscriber (>= 1).

        Raises:
            ValueError: ``buffer`` is not an int >= 1.
        """
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be an int >= 1, got {buffer!r}")
        return self._events.subscribe(buffer)

    def _slots(self, grace: float) -> tuple[int, int]:
        """For scaling: workers holding a slot while not ready, and spare burst workers."""
        counts = self._workers.counts(spare_for=grace)
        return counts.creating, counts.spare
