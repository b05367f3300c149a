"""Task outcomes: answers, failures, retries (now or after a backoff) and kill answers."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from .._exceptions import ManagerStoppedError, MaxRetriesExceededError
from .._metrics import Outcome, outcome
from .admission import Admission
from .failures import HealthCheck, task_error
from .hooks import Hooks
from .queues import DISCARDED, DONE, QUEUED, RUNNING, WAITING, Task
from .run import RunState

__all__ = ["KILLED", "Outcomes"]

KILLED = "task manager was killed"


def _no_worker(task: Task[Any, Any]) -> None:
    raise RuntimeError("Outcomes.interrupt was never set")


class Outcomes:
    """Decides and delivers what happens to a task that did not simply succeed.

    It owns the backoff timers of tasks waiting to be re-run, and is where a caller's
    cancellation ends up (:meth:`forget`). ``interrupt`` (set by the worker set) stops
    a running task.
    """

    __slots__ = (
        "_admission", "_failed", "_hooks", "_loop", "_max_retries", "_retried", "_run",
        "_waiting", "health", "interrupt",
    )  # fmt: skip

    def __init__(
        self,
        *,
        admission: Admission,
        run: RunState,
        failed: Callable[[Outcome], None],
        retried: Callable[[], None],
        health: HealthCheck,
        max_retries: int,
        hooks: Hooks,
    ) -> None:
        self._admission = admission
        self._run = run
        self._failed = failed
        self._retried = retried
        self.health = health
        self._max_retries = max_retries
        self._hooks = hooks
        self._loop: asyncio.AbstractEventLoop | None = None
        self.interrupt: Callable[[Task[Any, Any]], None] = _no_worker
        # Failed healthily and waiting out a backoff: the timer that re-queues each.
        self._waiting: dict[Task[Any, Any], asyncio.TimerHandle] = {}
        for queue in admission.queues:
            queue.forget = self.forget

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def forget(self, task: Task[Any, Any]) -> None:
        """The caller cancelled ``task``'s future: drop it or interrupt it."""
        state = task.state
        if state == QUEUED:
            task.queue.discard(task)
        elif state == RUNNING:
            self.interrupt(task)
        elif state == WAITING:
            self._end_wait(task)
            task.state = DONE
            self.record_failure(task)

    def record_failure(self, task: Task[Any, Any]) -> None:
        now = time.monotonic()
        self._failed(outcome(task.queued_at, task.started_at or now, now))

    def failed(
        self, task: Task[Any, Any], exc: BaseException, returned: object, interrupted: bool
    ) -> bool:
        """Settle a failed run of ``task``: retry, re-queue or answer it.

        Args:
            task: the task, still RUNNING unless kill() answered it already.
            exc: what it raised.
            returned: what its function returned (NOT_CALLED if calling it raised).
            interrupted: its caller cancelled it while it ran.

        Returns:
            Whether the resource it ran on is healthy.
        """
        if task.state != RUNNING:  # kill() answered and counted it already
            return True
        # A caller that gave up (even if the task turned its cancel into another
        # error, or cancelled from check_health) gets no re-run.
        interrupted = interrupted or task.future.done()
        exc = task_error(task.fn, returned, exc)
        healthy = self.health(exc)
        interrupted = interrupted or task.future.done()  # check_health may cancel it
        if task.errors is None:
            task.errors = [exc]
        else:
            task.errors.append(exc)
        if healthy:
            healthy_failures = len(task.errors) - task.unhealthy_failures
            if interrupted or task.policy.once or healthy_failures > task.policy.retries:
                self.fail(task, exc)
            else:
                self._retry_later(task)
            return True
        task.unhealthy_failures += 1
        if interrupted or task.policy.once or task.unhealthy_failures > self._max_retries:
            self.fail(task, exc)
        else:
            self._retry_now(task)
        return False

    def fail(self, task: Task[Any, Any], exc: BaseException) -> None:
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
        self.record_failure(task)

    def answer_killed(self, task: Task[Any, Any]) -> None:
        """Answer a task kill() stops with ManagerStoppedError; count it if it ever ran."""
        state = task.state
        if state in (DONE, DISCARDED):
            return
        ran = state == RUNNING or task.errors is not None
        if state == WAITING:
            self._end_wait(task)
        task.state = DONE
        future = task.future
        if not future.done():
            future.set_exception(ManagerStoppedError(KILLED))
        if ran:
            self.record_failure(task)

    def release_waiting(self) -> None:
        """Re-queue every task waiting out a backoff at once (a graceful stop)."""
        for task in list(self._waiting):
            self._requeue(task)

    def kill_waiting(self) -> None:
        for task in list(self._waiting):
            self.answer_killed(task)

    def _retry_now(self, task: Task[Any, Any]) -> None:
        """An unhealthy failure: straight to the end of the priority queue."""
        self._retried()
        self._admission.requeue(task, self._admission.priority)

    def _retry_later(self, task: Task[Any, Any]) -> None:
        """A healthy failure: back to its own queue after its backoff, holding no worker."""
        self._retried()
        attempt = len(task.errors or ()) - task.unhealthy_failures
        delay = self._backoff(task, attempt)
        self._hooks.logger.debug(
            "retrying %r after %r: healthy re-run %d in %.3f s",
            task.fn,
            task.errors[-1] if task.errors else None,
            attempt,
            delay,
        )
        if task.future.done():  # its holder cancelled it from inside backoff()
            task.state = DONE
            self.record_failure(task)
            return
        if self._run.running and delay > 0:
            assert self._loop is not None
            task.state = WAITING
            self._waiting[task] = self._loop.call_later(delay, self._requeue, task)
        else:
            self._requeue(task)

    def _backoff(self, task: Task[Any, Any], attempt: int) -> float:
        """The task's backoff for ``attempt``; 0 (logged) if it fails or is not a delay."""
        backoff = task.policy.backoff
        delay: Any = self._hooks.call("retry backoff", backoff, attempt, default=0.0)
        try:
            seconds = float(delay)
        except BaseException:
            seconds = math.nan
        if not 0 <= seconds < math.inf:
            self._hooks.logger.error(
                "retry backoff %r returned %r, not a delay in seconds; retrying at once",
                backoff,
                delay,
            )
            return 0.0
        return seconds

    def _end_wait(self, task: Task[Any, Any]) -> None:
        timer = self._waiting.pop(task, None)
        if timer is not None:
            timer.cancel()

    def _requeue(self, task: Task[Any, Any]) -> None:
        self._end_wait(task)
        self._admission.requeue(task, task.home)
