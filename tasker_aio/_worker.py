"""One worker: holds one resource and runs tasks from the queues, priority first."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic

import anyio

from ._queue import DISCARDED, DONE, QUEUED, RUNNING, Task
from ._types import E, R

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["CLOSING", "CREATING", "NO_RESOURCE", "READY", "Worker"]

NO_RESOURCE: Any = object()  # a resource may legitimately be None
# Worker phases. Every phase counts against max_worker_count; only READY is "active".
CREATING = 0
READY = 1
CLOSING = 2


class Worker(Generic[R, E]):
    """A coroutine in the manager's task group that owns ``resource``.

    Its life: create the resource (unless handed one), run tasks until retired, drained
    or killed, then destroy the resource. An unhealthy failure swaps the resource in
    place, so a worker never loses its slot.
    """

    __slots__ = (
        "burst",
        "cancel_requested",
        "current",
        "idle_since",
        "manager",
        "phase",
        "resource",
        "retiring",
        "task",
        "waiter",
    )

    def __init__(
        self, manager: TaskManager[R, E], burst: bool, resource: Any = NO_RESOURCE
    ) -> None:
        self.manager = manager
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

    async def run(self) -> None:
        m = self.manager
        self.task = asyncio.current_task()
        try:
            # Only kill() ends a worker early: a cancelled host or task group must not
            # cut it off between a task and its answer, or leak its resource.
            with anyio.CancelScope(shield=True):
                try:
                    with m._killable():
                        try:
                            if self.resource is NO_RESOURCE:
                                await self._create()
                            if self.resource is not NO_RESOURCE:
                                self.phase = READY
                                await self._serve()
                        finally:
                            if self.current is not None:
                                m._answer_killed(self.current)
                                self.current = None
                finally:  # even if a cancellation got past the kill scope
                    self.phase = CLOSING
                    if self.resource is not NO_RESOURCE:
                        resource, self.resource = self.resource, NO_RESOURCE
                        await m._destroy(resource)
        except asyncio.CancelledError:
            pass  # the worker is over; nothing outside waits on its cancellation
        finally:
            m._worker_gone(self)

    async def _create(self) -> None:
        m = self.manager
        self.resource = await m._create_with_retry(
            "burst worker" if self.burst else "worker",
            # While running, base workers remain, so a burst worker may give up;
            # during a drain, whoever holds the work must see it through.
            give_up=lambda: (self.burst and m._state == "running") or m._drained(),
        )

    async def _serve(self) -> None:
        m = self.manager
        priority, main = m._priority, m._main
        completed, failed = m._completed, m._failed
        clock = time.monotonic
        no_resource = NO_RESOURCE
        # One clock read per task: a task's end is the next one's start.
        now = resumed = clock()
        turn = m._watch_turns()
        while True:
            # Awaiting a task that never suspends does not yield: without this a flood
            # of trivial tasks would starve every other coroutine on the loop. A task
            # that suspended let the loop turn already, and needs no extra turn.
            if now - resumed > m._yield_after:
                m._tidy()
                if m._turns == turn:
                    await asyncio.sleep(0)
                    now = clock()
                resumed = now
                turn = m._watch_turns()
            if self.retiring:
                if not (priority.live or main.live):
                    return
                self.retiring = False  # work arrived as we were retired: take it
            if priority.live:
                queue = priority
            elif main.live:
                queue = main
            else:
                if m._state != "running":
                    return  # stopping and drained
                await self._idle()
                now = resumed = clock()
                turn = m._watch_turns()
                continue
            # A TaskQueue pop, inlined on the hot path: live > 0, so a live task waits.
            task = queue.items.popleft()
            if task.state != QUEUED:
                continue  # discarded while queued, and counted out of live then
            queue.live -= 1
            if queue.putters:
                queue.wake_putter()
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
        """Retry, re-queue or answer a failed task; False when the worker must exit."""
        m = self.manager
        if task.state != RUNNING:  # kill() answered and counted it already
            return True
        exc = m._task_error(task.fn, returned, exc)
        healthy = m._is_healthy(exc)
        # A caller that gave up (even if the task turned its cancel into another
        # error, or cancelled from check_health) gets no re-run.
        interrupted = interrupted or task.future.done()
        if task.errors is None:
            task.errors = [exc]
        else:
            task.errors.append(exc)
        if healthy:
            healthy_failures = len(task.errors) - task.unhealthy_failures
            if interrupted or task.policy.once or healthy_failures > task.policy.retries:
                m._fail(task, exc)
            else:
                m._retry_later(task)
            return True
        task.unhealthy_failures += 1
        if interrupted or task.policy.once or task.unhealthy_failures > m._settings.max_retries:
            m._fail(task, exc)
        else:
            m._retry_now(task)
        return await self._replace(exc)

    async def _replace(self, exc: BaseException) -> bool:
        """Swap a broken resource for a fresh one; False if none is needed any more."""
        m = self.manager
        m._logger.warning("replacing a worker after an unhealthy error: %r", exc)
        resource, self.resource = self.resource, NO_RESOURCE
        self.phase = CREATING
        await m._destroy(resource)
        if m._drained():
            return False
        await self._create()
        if self.resource is NO_RESOURCE:
            return False
        self.phase = READY
        return True

    async def _idle(self) -> None:
        m = self.manager
        m._tidy()
        waiter = m._loop.create_future()
        self.waiter = waiter
        self.idle_since = time.monotonic()
        idle = m._idle_burst if self.burst else m._idle
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
