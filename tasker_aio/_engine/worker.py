"""One worker: holds one resource and runs tasks from the queues, priority first."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any, Generic

from .._events import WorkerReplaced
from .._types import E, R
from .crew import Crew
from .failures import NOT_CALLED
from .queues import DISCARDED, DONE, QUEUED, RUNNING, Task
from .resources import NO_RESOURCE

__all__ = ["CLOSING", "CREATING", "READY", "Worker"]

# Task.uncancel() clears a cancel requested of a running task (not yet delivered) only
# from Python 3.13; before, it still fires at the task's next await.
_PENDING_SURVIVES_UNCANCEL = sys.version_info < (3, 13)

# Worker phases. Every phase counts against max_worker_count; only READY is "active".
CREATING = 0
READY = 1
CLOSING = 2


_TENDING: Any = object()  # an idle worker's waiter result: time to check its resource
# A worker's last-seen turn count when it has just started or waited: the loop turned.
_TURNED = -1


class Worker(Generic[R, E]):
    """A coroutine that owns ``resource`` and runs tasks on it.

    Its life: create the resource (unless handed one), run tasks until retired, drained
    or killed, then destroy the resource. An unhealthy failure swaps the resource in
    place, so a worker never loses its slot. Only ``kill()`` ends it early: a task that
    cancels itself, a stray ``CancelledError`` or a cancellation of the worker's asyncio
    task from outside is withdrawn, and the worker carries on.
    """

    __slots__ = (
        "born", "burst", "cancel_requested", "checked", "crew", "current", "gone",
        "has_slot", "idle_since", "phase", "resource", "retiring", "task", "undelivered",
        "used_at", "waiter",
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
        self.undelivered = False  # a withdrawn cancel may still fire (see _settle_cancels)
        # Its slot among max_resources: handed over with a resource, or taken for one.
        self.has_slot = resource is not NO_RESOURCE or burst
        # What the resource's care needs to know (see Care): when it was created, when
        # it was last known good, and in which Resources.epoch.
        self.born = self.used_at = 0.0
        self.checked = 0
        if resource is not NO_RESOURCE:
            crew.care.mark_new(self)

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
        through it (see the performance notes in the README). Caring for the resource
        between tasks (``check_resource``, ``on_reset``, ``max_resource_age``) is one
        branch, skipped unless configured.
        """
        crew = self.crew
        run = crew.run
        priority, main = crew.admission.priority, crew.admission.main
        completed, failed = crew.completed, crew.failed
        idle_line = crew.idle.burst if self.burst else crew.idle.base
        care = crew.settings.cares_for_resources
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
                now = clock()
                turn = _TURNED
                while True:
                    if self.retiring:
                        if not (priority.live or main.live):
                            return
                        self.retiring = False  # work arrived as we were retired: take it
                    if not (priority.live or main.live):
                        if not run.running:
                            return  # stopping and drained
                        if not await self._idle(idle_line):
                            return
                        now = clock()
                        turn = _TURNED
                        continue
                    if care and crew.care.needs_care(self, now):
                        if not await self._tend():
                            return
                        now = clock()
                        if not (priority.live or main.live):
                            continue  # taken by another worker meanwhile
                    queue = priority if priority.live else main
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
                        if task.trace is not None:
                            crew.outcomes.end_trace(task, "cancelled")
                        continue

                    task.state = RUNNING
                    self.current = task
                    task.started_at = started = now
                    returned: Any = not_called
                    if traced := task.trace is not None:
                        token = crew.outcomes.enter_trace(task, self.burst)
                    try:
                        returned = task.fn(self.resource)
                        result = await returned
                    except BaseException as exc:
                        if traced:
                            crew.outcomes.leave_trace(token)
                        interrupted = self._settle_cancels(exc)  # re-raises kill()'s
                        if not await self._failed(task, exc, returned, interrupted):
                            return
                        if self.undelivered:  # before the next task, not before the answer
                            await self._take_undelivered_cancel()
                        now = clock()
                    else:
                        now = clock()
                        self.current = None
                        if traced:
                            crew.outcomes.leave_trace(token)
                        if self.cancel_requested or cancelling():
                            self._settle_cancels(None)  # the task swallowed a cancellation
                        if task.state == RUNNING:  # else kill() answered and counted it
                            task.state = DONE
                            # The Outcome (see Recorders), built inline on the hot path.
                            logged = (now, now - started, started - task.queued_at)
                            if future.done():  # its caller cancelled it meanwhile
                                failed(logged)
                                if traced:
                                    crew.outcomes.end_trace(task, "cancelled")
                            else:
                                future.set_result(result)
                                completed(logged)
                                if traced:
                                    crew.outcomes.end_trace(task, "completed")
                        if self.undelivered:  # before the next task, not before the answer
                            await self._take_undelivered_cancel()
                            now = clock()
                        if care:
                            if not await self._tend(after_task=True):
                                return
                            now = clock()
                    # Awaiting a task that never suspends does not yield: without this a
                    # flood of trivial tasks would starve every other coroutine on the
                    # loop. Past the turn's budget (shared by all workers) a worker
                    # yields, unless the loop turned since it last looked.
                    if now > crew.turn_deadline:
                        crew.tidy()
                        if crew.turns == turn:
                            try:
                                await asyncio.sleep(0)
                            except asyncio.CancelledError as exc:
                                run.survive(exc)
                            now = clock()
                        turn = crew.watch_turns(now)
        finally:
            await self._end()

    async def _idle(self, idle_line: Any) -> bool:
        """Wait to be woken for work, tending the resource whenever its care is due.

        False if the worker should leave (its resource could not be replaced).
        """
        crew = self.crew
        crew.tidy()
        self.idle_since = time.monotonic()  # kept while it tends: retirement counts from here
        while True:
            self.waiter = waiter = crew.loop.create_future()
            idle_line.append(self)
            timer = self._keepalive_timer(waiter)
            tending = False
            try:
                await waiter
                tending = waiter.result() is _TENDING
            except asyncio.CancelledError as exc:
                crew.run.survive(exc)
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
                if tending or not waiter.done() or waiter.cancelled():  # not popped by a waker
                    with contextlib.suppress(ValueError):
                        idle_line.remove(self)
            if not tending:
                return True
            if not await self._tend():
                return False
            if crew.admission.backlog or not crew.run.running or self.retiring:
                return True

    def _keepalive_timer(self, waiter: asyncio.Future[Any]) -> asyncio.TimerHandle | None:
        """A timer that wakes the idle worker when its resource is due for care."""
        due = self.crew.care.next_due(self)
        if due is None:
            return None
        loop = self.crew.loop
        return loop.call_at(loop.time() + max(0.0, due - time.monotonic()), _wake_to_tend, waiter)

    async def _tend(self, after_task: bool = False) -> bool:
        """Care for the resource: a check before a task, a reset after one; replace if spent.

        False if the worker should leave instead (drained, or gave up creating).
        """
        crew = self.crew
        self.phase = CREATING  # not "active" while it is cared for
        try:
            why = await (crew.care.after_task(self) if after_task else crew.care.tend(self))
        except asyncio.CancelledError as exc:
            crew.run.survive(exc)
            why = "its care was cut short"
        if why is not None:
            return await self._replace(f"because {why}")
        self.phase = READY
        return True

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
        withdrew = False
        while task.cancelling():
            task.uncancel()
            withdrew = True
        # A cancel requested while the task ran and never delivered (it cancelled its own
        # task, then returned): uncancel() clears it only from Python 3.13.
        self.undelivered = withdrew and not cancelled and _PENDING_SURVIVES_UNCANCEL
        return cancelled and requested

    async def _take_undelivered_cancel(self) -> None:
        """Let a withdrawn, undelivered cancel fire here, between tasks, and drop it."""
        self.undelivered = False
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError as exc:
            self.crew.run.survive(exc)

    def _drained(self) -> bool:
        """Shutting down with nothing left to run: the worker may leave."""
        return not self.crew.run.running and not self.crew.admission.backlog

    async def _create(self) -> bool:
        """Create the resource in the worker's slot, retrying; False if it gave up."""
        crew = self.crew
        resources = crew.resources
        while True:
            try:
                if not self.has_slot:
                    await resources.slots.take()
                    self.has_slot = True
                self.resource = await resources.create_with_retry(
                    "burst worker" if self.burst else "worker",
                    # While running, base workers remain, so a burst worker may give up;
                    # during a drain, whoever holds the work must see it through.
                    give_up=lambda: (self.burst and crew.run.running) or self._drained(),
                )
                break
            except asyncio.CancelledError as exc:
                crew.run.survive(exc)
        created = self.resource is not NO_RESOURCE
        if self.burst:
            crew.burst_created(created)
        if not created:
            resources.slots.free()
            self.has_slot = False
            return False
        crew.care.mark_new(self)
        return True

    async def _failed(
        self, task: Task[R, E], exc: BaseException, returned: Any, interrupted: bool
    ) -> bool:
        """Settle a failed task; care for or replace the resource. False: the worker must exit."""
        crew = self.crew
        outcomes = crew.outcomes
        try:
            if task.state != RUNNING:  # kill() answered and counted it already
                return True
            error, healthy = outcomes.judge(task, exc, returned)
            if healthy:
                # A failure may mean a broken resource that check_health cannot see.
                try:
                    healthy = await crew.care.usable_after_failure(self)
                except asyncio.CancelledError as cancel:
                    crew.run.survive(cancel)  # kill()'s: run() answers self.current
                    self.cancel_requested = False  # interrupt()'s: spent on the check
                    healthy = False
            outcomes.settle(task, error, healthy, interrupted)
        finally:
            if not crew.run.killed:
                self.current = None
        if not healthy:
            crew.resources.note_unhealthy()
            return await self._replace(f"after an unhealthy error: {error!r}", error)
        if crew.settings.cares_for_resources:
            return await self._tend(after_task=True)
        return True

    async def _replace(self, why: str, error: BaseException | None = None) -> bool:
        """Swap the resource for a fresh one; False if none is needed any more.

        The old one is destroyed in the background while the new one is created (both
        hold a slot among ``max_resources``; at the cap the creation waits for one).
        """
        crew = self.crew
        crew.logger.warning("replacing a worker %s", why)
        if crew.events.active:
            crew.events.publish(
                WorkerReplaced(at=time.monotonic(), burst=self.burst, reason=why, error=error)
            )
        resource, self.resource = self.resource, NO_RESOURCE
        self.phase = CREATING
        self.has_slot = False
        if crew.resources.discard(resource) is not None:  # frees its slot once destroyed
            try:  # let an async on_destroy begin before on_create does (logs read in order)
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                crew.run.survive(exc)
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
                self.has_slot = False
                try:
                    await crew.resources.destroy(resource)
                except asyncio.CancelledError:
                    pass  # held back until on_destroy ended; the worker is over anyway
            elif self.has_slot:
                self.has_slot = False
                crew.resources.slots.free()
        finally:
            self.gone = True
            crew.gone(self)


def _wake_to_tend(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TENDING)
