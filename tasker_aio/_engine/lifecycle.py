"""The manager's life: entering, stopping, killing, and the order of shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Generic, Literal

import anyio

from .._config import Settings
from .._events import ShutdownBegan, ShutdownFinished
from .._types import R
from .admission import Admission
from .callbacks import Callbacks
from .events import EventBus
from .hooks import SafeLogger
from .outcomes import Outcomes
from .pool import ResourcePool
from .resources import Resources
from .run import RunState
from .scaling import ScalingActions, ScalingView, run_scaling
from .workers import WorkerSet

__all__ = ["Lifecycle"]


class Lifecycle(Generic[R]):
    """Starts the parts in order and shuts them down in order.

    Shutdown, graceful or not, goes: refuse new work (``Admission.close``), stop
    scaling, release tasks waiting out a backoff (stop) or answer everything not yet
    done (kill), wake idle workers so they drain and leave; once no worker, run_task
    call or refill holds anything, answer whatever is still queued, destroy the pool
    and mark the manager stopped.
    """

    def __init__(
        self,
        *,
        settings: Settings[R],
        run: RunState,
        admission: Admission,
        outcomes: Outcomes,
        workers: WorkerSet[R],
        resources: Resources[R],
        pool: ResourcePool[R],
        callbacks: Callbacks,
        scaling: tuple[ScalingView, ScalingActions],
        events: EventBus,
        logger: SafeLogger,
    ) -> None:
        self._settings = settings
        self._run = run
        self._admission = admission
        self._outcomes = outcomes
        self._workers = workers
        self._resources = resources
        self._pool = pool
        self._callbacks = callbacks
        self._scaling = scaling
        self._events = events
        self._logger = logger
        self._entered = False
        self._entering: anyio.CancelScope | None = None  # while enter() creates resources
        self._scaling_scope: anyio.CancelScope | None = None
        self._pending: Literal["stop", "kill"] | None = None  # asked for during entry

    async def enter(self) -> None:
        """Create the pool and base workers; return once every base worker is ready.

        A ``kill()`` meanwhile cancels the creations and leaves the manager stopped.

        Raises:
            ResourceCreationError: an ``on_create`` failed; whatever was created is
                destroyed first.
            RuntimeError: the manager was entered before.
        """
        run = self._run
        if self._entered:
            raise RuntimeError("a TaskManager runs once; create a new one to start again")
        if run.state != "new":
            raise RuntimeError(
                "this TaskManager was stopped before it was entered; create a new one"
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "tasker_aio runs on asyncio only (the default loop or uvloop): enter the"
                " TaskManager in code that asyncio.run() runs, not under trio or without"
                " an event loop"
            ) from None
        self._entered = True
        run.loop = loop
        self._admission.bind(loop)
        self._outcomes.bind(loop)
        self._workers.bind(loop)
        settings = self._settings
        resources: list[R] = []  # stays empty if kill() cancels the creations
        try:
            with anyio.CancelScope() as self._entering:
                if self._pending == "kill":
                    self._entering.cancel()
                resources = await self._resources.create_all(
                    settings.resource_pool_size + settings.worker_count
                )
        except BaseException:
            self._finished()
            raise
        finally:
            self._entering = None
        if self._pending == "kill":  # kill() came as the creations ended: keep nothing
            await self._resources.destroy_all(resources)
            self._finished()
            return
        self._pool.fill(resources[: settings.resource_pool_size])
        for resource in resources[settings.resource_pool_size :]:
            self._workers.spawn(burst=False, resource=resource)
        run.state = "running"
        self._admission.open = True
        if settings.burst_interval is not None:
            run.start(self._scale, name="tasker_aio: scaling", hold=False)
        if settings.resource_pool_size and (
            settings.check_interval is not None or settings.max_resource_age is not None
        ):
            run.start(self._pool.keep_alive, name="tasker_aio: pool keepalive")
        self._logger.info(
            "task manager started: %d workers (max %d), %d pooled resources",
            settings.worker_count,
            settings.max_worker_count,
            settings.resource_pool_size,
        )
        if self._pending is not None:  # stop() came while we started
            self._begin_shutdown("stop")

    async def exit(self, failed: bool) -> None:
        """Leave ``async with``: stop, or kill when the block ``failed``."""
        try:
            if not failed:
                await self.stop()
            else:
                with anyio.CancelScope(shield=True):
                    await self.kill()
        except BaseException:  # cancelled while draining: escalate
            with anyio.CancelScope(shield=True):
                await self.kill()
            raise
        await self._callbacks.finish()

    async def _scale(self) -> None:
        interval = self._settings.burst_interval
        assert interval is not None
        view, act = self._scaling
        with anyio.CancelScope() as self._scaling_scope:
            if not self._run.running:  # restarted after shutdown began
                return
            await run_scaling(
                view,
                act,
                interval=interval,
                maximum=self._settings.max_worker_count,
                grace=self._settings.burst_idle_timeout,
                logger=self._logger,
                events=self._events,
            )

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the spec's API
        """Shut down gracefully; escalate to :meth:`kill` after ``timeout`` seconds."""
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not timeout >= 0  # also refuses NaN
        ):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        self._check_not_inside_a_task("stop")
        stopped = self._run.stopped
        if not self._stop_unstarted("stop"):
            self._begin_shutdown("stop")
        if timeout is None:
            await stopped.wait()
            return
        with anyio.move_on_after(timeout):
            await stopped.wait()
        if not stopped.is_set():
            self._logger.warning("stop() did not finish within %ss; killing", timeout)
            await self.kill()

    async def kill(self) -> None:
        """Shut down now: cancel running tasks, answer every other one, destroy everything."""
        if not self._stop_unstarted("kill"):
            self._begin_shutdown("kill")
            self._kill_now()
        await self._run.stopped.wait()

    def _stop_unstarted(self, how: Literal["stop", "kill"]) -> bool:
        """Handle a shutdown before the manager runs; True if there is nothing more to do."""
        if self._run.state != "new":
            return False
        if not self._entered:
            self._finished()
        elif self._pending != "kill":
            self._pending = how  # enter() applies it
            if how == "kill" and self._entering is not None:
                self._entering.cancel()  # stop creating: a hook may hang for ever
        return True

    def _check_not_inside_a_task(self, method: str) -> None:
        task = asyncio.current_task()
        if self._workers.runs_in(task) or self._pool.runs_in(task):
            raise RuntimeError(
                f"{method}() awaited inside one of this manager's tasks would wait for"
                f" itself; schedule it instead: asyncio.create_task(manager.{method}())"
            )

    def _begin_shutdown(self, how: Literal["stop", "kill"]) -> None:
        run = self._run
        if run.state != "running":
            if how == "kill" and run.state == "stopping" and not run.killed:
                self._announce(how)  # kill() escalating a stop()
            return
        run.state = "stopping"
        self._logger.info("task manager stopping")
        self._announce(how)
        run.shutdown_started.set()
        self._admission.close()
        if self._scaling_scope is not None:
            self._scaling_scope.cancel()
        self._outcomes.release_waiting()
        self._workers.idle.wake_all()  # let idle workers see the drain and leave
        run.start(
            self._finish_shutdown,
            name="tasker_aio: finish shutdown",
            hold=False,
            finished=run.stopped.is_set,
        )

    def _announce(self, how: Literal["stop", "kill"]) -> None:
        if self._events.active:
            self._events.publish(ShutdownBegan(at=time.monotonic(), how=how))

    def _kill_now(self) -> None:
        run = self._run
        if run.killed or run.state == "stopped":  # nothing left to kill
            return
        run.killed = True
        self._logger.info("task manager killed")
        outcomes = self._outcomes
        for task in self._admission.drain():
            outcomes.answer_killed(task)
        outcomes.kill_waiting()
        self._workers.answer_running_killed()
        run.kill_all()

    async def _finish_shutdown(self) -> None:
        run = self._run
        run.check_quiet()
        await run.quiet.wait()
        for task in self._admission.drain():  # nothing can run these any more
            self._outcomes.answer_killed(task)
        await self._pool.close()
        self._logger.info("task manager stopped")
        self._finished()

    def _finished(self) -> None:
        self._run.state = "stopped"
        self._run.stopped.set()
        if self._events.active:
            self._events.publish(ShutdownFinished(at=time.monotonic()))
        self._events.close()
