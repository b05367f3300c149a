"""One worker: holds one resource and runs tasks from the queues, priority first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol

import anyio

from .._metrics import Outcome
from .._types import E, Logger, R
from .admission import Admission
from .failures import NOT_CALLED
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
    logger: Logger
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
    place, so a worker never loses its slot.
    """

    __slots__ = (
        "burst",
        "cancel_requested",
        "crew",
        "current",
        "idle_since",
        "phase",
        "resource",
        "retiring",
        "task",
        "waiter",
    )

    def __init__(self, crew: Crew[R], burst: bool, resource: Any = NO_RESOURCE) -> None:
        self.crew = crew
        self.burst = burst
        self.resource: Any = resource
        self.phase = CREATING if resource is NO_RESOURCE else READY
        self.retiring = False
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
        crew = self.crew
        self.task = asyncio.current_task()
        try:
            # Only kill() ends a worker early: a cancelled host or task group must not
            # cut it off between a task and its answer, or leak its resource.
            with anyio.CancelScope(shield=True):
                try:
                    with crew.run.killable():
                        try:
                            if self.resource is NO_RESOURCE:
                                await self._create()
                            if self.resource is not NO_RESOURCE:
                                self.phase = READY
                                await self._serve()
                        finally:
                            if self.current is not None:
                                crew.outcomes.answer_killed(self.current)
                                self.current = None
                finally:  # even if a cancellation got past the kill scope
                    self.phase = CLOSING
                    if self.resource is not NO_RESOURCE:
                        resource, self.resource = self.resource, NO_RESOURCE
                        await crew.resources.destroy(resource)
        except asyncio.CancelledError:
            pass  # the worker is over; nothing outside waits on its cancellation
        finally:
            crew.gone(self)

    def _drained(self) -> bool:
        """Shutting down with nothing left to run: the worker may leave."""
        return not self.crew.run.running and not self.crew.admission.backlog

    async def _create(self) -> None:
        crew = self.crew
        self.resource = await crew.resources.create_with_retry(
            "burst worker" if self.burst else "worker",
            # While running, base workers remain, so a burst worker may give up;
            # during a drain, whoever holds the work must see it through.
            give_up=lambda: (self.burst and crew.run.running) or self._drained(),
        )

    async def _serve(self) -> None:
        crew = self.crew
        run = crew.run
        priority, main = crew.admission.priority, crew.admission.main
        completed, failed = crew.completed, crew.failed
        clock = time.monotonic
        no_resource = NOT_CALLED
        # One clock read per task: a task's end is the next one's start.
        now = resumed = clock()
        turn = crew.watch_turns()
        while True:
            # Awaiting a task that never suspends does not yield: without this a flood
            # of trivial tasks would starve every other coroutine on the loop. A task
            # that suspended let the loop turn already, and needs no extra turn.
            if now - resumed > crew.yield_after:
                crew.tidy()
                if crew.turns == turn:
                    await asyncio.sleep(0)
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
                await self._idle()
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
            returned: Any = no_resource
            try:
                returned = task.fn(self.resource)
                result = await returned
            except BaseException as exc:
                # May re-raise (kill); run() then answers self.current.
                interrupted = self._own_cancellation(exc)
                self.current = None
                if not await self._failed(task, exc, returned, interrupted):
                    return
                now = clock()
            else:
                now = clock()
                self.current = None
                if self.cancel_requested:  # the task swallowed its cancellation
                    self._own_cancellation(None)
                if task.state == RUNNING:  # else kill() answered and counted it
                    task.state = DONE
                    # The Outcome (see recorders()), built inline on the hot path.
                    logged = (now, now - started, started - task.queued_at)
                    if future.done():  # its caller cancelled it meanwhile
                        failed(logged)
                    else:
                        future.set_result(result)
                        completed(logged)

    def _own_cancellation(self, exc: BaseException | None) -> bool:
        """Settle a cancel made by interrupt(): True if ``exc`` is that cancel alone.

        Re-raises a cancellation that (also) came from elsewhere: kill() or the loop.
        """
        assert self.task is not None
        cancelled = isinstance(exc, asyncio.CancelledError)
        if not self.cancel_requested:
            # A CancelledError with no cancel request pending came from the task's own
            # code (say, an awaited future that was cancelled): a plain failure.
            if cancelled and self.task.cancelling() > 0:
                raise exc  # type: ignore[misc]
            return False
        self.cancel_requested = False
        if self.task.uncancel() > 0 and cancelled:
            raise exc  # type: ignore[misc]
        return cancelled

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
        await crew.resources.destroy(resource)
        if self._drained():
            return False
        await self._create()
        if self.resource is NO_RESOURCE:
            return False
        self.phase = READY
        return True

    async def _idle(self) -> None:
        crew = self.crew
        crew.tidy()
        waiter = crew.loop.create_future()
        self.waiter = waiter
        self.idle_since = time.monotonic()
        idle = crew.idle.burst if self.burst else crew.idle.base
        idle.append(self)
        try:
            await waiter
        finally:
            self.waiter = None
            if not waiter.done() or waiter.cancelled():
                try:
                    idle.remove(self)
                except ValueError:
                    pass
