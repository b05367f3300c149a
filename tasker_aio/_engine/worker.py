"""One worker: holds one resource and runs tasks from the queues, priority first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol

from .._metrics import Outcome
from .._types import E, R
from .admission import Admission
from .failures import NOT_CALLED
from .hooks import SafeLogger
from .idle import IdleWorkers
from .outcomes import Outcomes
from .queues import DISCARDED, DONE, QUEUED, RUNNING, Task
from .resources import NO_RESOURCE, Resources
from .run import RunState

__all__ = ["CLOSING", "CREATING", "READY", "Crew", "Worker"]

# Worker phases. Every phase counts against max_worker_count; only READY is "active".
CREATING = 0
READY = 1
CLOSING = 2


class Crew(Protocol[R]):
    """What a worker needs of the worker set it belongs to (see WorkerSet)."""

    loop: asyncio.AbstractEventLoop
    run: RunState
    admission: Admission
    outcomes: Outcomes
    resources: Resources[R]
    idle: IdleWorkers
    logger: SafeLogger
    completed: Callable[[Outcome], None]
    failed: Callable[[Outcome], None]
    tidy: Callable[[], None]  # bounds the collector's buffered events at slow points
    yield_after: float  # seconds of back-to-back running before a worker yields
    turns: int  # event-loop turns counted so far (see watch_turns)

    def watch_turns(self) -> int:
        """The loop-turn count now; it moves once the loop has run its next callbacks."""
        ...

    def gone(self, worker: Worker[R, Any]) -> None:
        """``worker`` has ended and destroyed its resource."""
        ...


class Worker(Generic[R, E]):
    """A coroutine that owns ``resource`` and runs tasks on it.

    Its life: create the resource (unless handed one), run tasks until retired, drained
    or killed, then destroy the resource. An unhealthy failure swaps the resource in
    place, so a worker never loses its slot. Only ``kill()`` ends it early: a task that
    cancels itself, a stray ``CancelledError`` or a cancellation of the worker's asyncio
    task from outside is withdrawn, and the worker carries on.
    """

    __slots__ = (
        "burst", "cancel_requested", "crew", "current", "gone", "idle_since", "phase",
        "resource", "retiring", "task", "waiter",
    )  # fmt: skip

    def __init__(self, crew: Crew[R], burst: bool, resource: Any = NO_RESOURCE) -> None:
        self.crew = crew
        self.burst = burst
        self.resource: Any = resource
        self.phase = CREATING if resource is NO_RESOURCE else READY
        self.retiring = False
        self.gone = False  # its run() has ended and destroyed its resource
        self.current: Task[R, E] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self.cancel_requested = False

    def spare(self, now: float, grace: float) -> bool:
        """A ready burst worker idle (and not yet woken) for at least ``grace`` seconds."""
        waiter = self.waiter
        return (
            self.burst
            and self.phase == READY
            and waiter is not None
            and not waiter.done()
            and now - self.idle_since >= grace
        )

    def interrupt(self) -> None:
        """Cancel the task this worker is running (its caller gave up), not the worker."""
        if not self.cancel_requested and self.task is not None:
            self.cancel_requested = True
            self.task.cancel()

    def retire(self) -> None:
        """Leave once idle with nothing queued; wakes the worker if it is idle."""
        self.retiring = True
        self.crew.idle.remove(self)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self) -> None:
        """Serve tasks until retired, drained or killed; then destroy the resource.

        One coroutine frame, the serving loop inlined: every task resumes the worker
        through it (see the performance notes in the README).
        """
        crew = self.crew
        run = crew.run
        loop = crew.loop
        priority, main = crew.admission.priority, crew.admission.main
        completed, failed = crew.completed, crew.failed
        idle_line = crew.idle.burst if self.burst else crew.idle.base
        clock = time.monotonic
        not_called = NOT_CALLED
        self.task = worker_task = asyncio.current_task()
        assert worker_task is not None
        cancelling = worker_task.cancelling
        try:
            with run.killable():
                if self.resource is NO_RESOURCE and not await self._create():
                    return
                self.phase = READY
                # One clock read per task: a task's end is the next one's start.
                now = resumed = clock()
                turn = crew.watch_turns()
                while True:
                    # Awaiting a task that never suspends does not yield: without this a
                    # flood of trivial tasks would starve every other coroutine on the
                    # loop. A task that suspended let the loop turn already.
                    if now - resumed > crew.yield_after:
                        crew.tidy()
                        if crew.turns == turn:
                            try:
                                await asyncio.sleep(0)
                            except asyncio.CancelledError as exc:
                                run.survive(exc)
                            now = clock()
                        resumed = now
                        turn = crew.watch_turns()
                    if self.retiring:
                        if not (priority.live or main.live):
                            return
                        self.retiring = False  # work arrived as we were retired: take it
                    if priority.live:
                        queue = priority
                    elif main.live:
                        queue = main
                    else:
                        if not run.running:
                            return  # stopping and drained
                        # Idle until woken: inlined, as under light load it is once a task.
                        crew.tidy()
                        self.waiter = waiter = loop.create_future()
                        self.idle_since = clock()
                        idle_line.append(self)
                        try:
                            await waiter
                        except asyncio.CancelledError as exc:
                            run.survive(exc)
                        finally:
                            self.waiter = None
                            if not waiter.done() or waiter.cancelled():
                                try:
                                    idle_line.remove(self)
                                except ValueError:
                                    pass
                        now = resumed = clock()
                        turn = crew.watch_turns()
                        continue
                    # TaskQueue._get, inlined on the hot path: live > 0, so a live task waits.
                    task = queue.items.popleft()
                    if task.state != QUEUED:
                        continue  # discarded while queued, and counted out of live then
                    queue.live -= 1
                    if queue.line:
                        queue.wake_next_in_line()
                    future = task.future
                    if future.done():  # its awaiting caller was cancelled and has yet to forget it
                        task.state = DISCARDED
                        continue

                    task.state = RUNNING
                    self.current = task
                    task.started_at = started = now
                    returned: Any = not_called
                    try:
                        returned = task.fn(self.resource)
                        result = await returned
                    except BaseException as exc:
                        interrupted = self._settle_cancels(exc)  # re-raises kill()'s
                        self.current = None
                        if not await self._failed(task, exc, returned, interrupted):
                            return
                        now = clock()
                    else:
                        now = clock()
                        self.current = None
                        if self.cancel_requested or cancelling():
                            self._settle_cancels(None)  # the task swallowed a cancellation
                        if task.state == RUNNING:  # else kill() answered and counted it
                            task.state = DONE
                            # The Outcome (see Recorders), built inline on the hot path.
                            logged = (now, now - started, started - task.queued_at)
                            if future.done():  # its caller cancelled it meanwhile
                                failed(logged)
                            else:
                                future.set_result(result)
                                completed(logged)
        finally:
            await self._end()

    def _settle_cancels(self, exc: BaseException | None) -> bool:
        """Settle the cancel requests on the worker after a task; True if ``exc`` is interrupt()'s.

        kill()'s cancellation is re-raised. Any other request pending on the worker's
        asyncio task (interrupt()'s, the task's own ``current_task().cancel()``, one from
        outside) is withdrawn, so that it cannot hit the next task.
        """
        cancelled = isinstance(exc, asyncio.CancelledError)
        if self.crew.run.killed:
            if cancelled:
                raise exc  # type: ignore[misc]
            return False  # kill() answered the task; the next await ends the worker
        requested, self.cancel_requested = self.cancel_requested, False
        task = self.task
        assert task is not None
        while task.cancelling():
            task.uncancel()
        return cancelled and requested

    def _drained(self) -> bool:
        """Shutting down with nothing left to run: the worker may leave."""
        return not self.crew.run.running and not self.crew.admission.backlog

    async def _create(self) -> bool:
        """Create the resource, retrying; False if the worker should give up instead."""
        crew = self.crew
        while True:
            try:
                self.resource = await crew.resources.create_with_retry(
                    "burst worker" if self.burst else "worker",
                    # While running, base workers remain, so a burst worker may give up;
                    # during a drain, whoever holds the work must see it through.
                    give_up=lambda: (self.burst and crew.run.running) or self._drained(),
                )
                return self.resource is not NO_RESOURCE
            except asyncio.CancelledError as exc:
                crew.run.survive(exc)

    async def _destroy(self, resource: Any) -> None:
        try:
            await self.crew.resources.destroy(resource)
        except asyncio.CancelledError as exc:  # held back until on_destroy ended
            self.crew.run.survive(exc)

    async def _failed(
        self, task: Task[R, E], exc: BaseException, returned: Any, interrupted: bool
    ) -> bool:
        """Settle a failed task; replace the resource if it broke. False: the worker must exit."""
        if self.crew.outcomes.failed(task, exc, returned, interrupted):
            return True
        return await self._replace(exc)

    async def _replace(self, exc: BaseException) -> bool:
        """Swap a broken resource for a fresh one; False if none is needed any more."""
        crew = self.crew
        crew.logger.warning("replacing a worker after an unhealthy error: %r", exc)
        resource, self.resource = self.resource, NO_RESOURCE
        self.phase = CREATING
        await self._destroy(resource)
        if self._drained() or not await self._create():
            return False
        self.phase = READY
        return True

    async def _end(self) -> None:
        """Answer the task kill() interrupted, destroy the resource, leave the set."""
        crew = self.crew
        try:
            if self.current is not None:
                crew.outcomes.answer_killed(self.current)
                self.current = None
            self.phase = CLOSING
            if self.resource is not NO_RESOURCE:
                resource, self.resource = self.resource, NO_RESOURCE
                try:
                    await crew.resources.destroy(resource)
                except asyncio.CancelledError:
                    pass  # held back until on_destroy ended; the worker is over anyway
        finally:
            self.gone = True
            crew.gone(self)
