"""The manager's life as every part sees it: its state, kill scopes and its own tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import anyio

from .hooks import SafeLogger

__all__ = ["RunState", "State"]

State = Literal["new", "running", "stopping", "stopped"]


def _never() -> bool:
    return False


class RunState:
    """What the parts read of the manager's life, and the things they all share.

    The lifecycle moves ``state`` and ``killed``; every other part only reads them. A
    *holder* is anything that may still hold a resource or answer a task (a worker, a
    ``run_task`` call, a pool refill): shutdown finishes once none is left.

    The manager's own tasks (workers and background jobs) are plain asyncio tasks it
    supervises itself, like aiojobs does, not children of a task group: a task group
    cancels every child when one fails or when its host task is cancelled, the opposite
    of what a pool of long-lived workers needs. Only ``kill()`` (through
    :meth:`killable` scopes) or the job's own end stops one; a job cancelled from
    outside before it could finish (say, by an application cancelling every task at
    shutdown) is started again, and a worker swallows such a cancellation.
    """

    __slots__ = ("_jobs", "_scopes", "holders", "killed", "logger", "loop", "quiet",
                 "shutdown_started", "state", "stopped")  # fmt: skip

    def __init__(self, logger: SafeLogger) -> None:
        self.state: State = "new"
        self.killed = False
        self.holders = 0
        self.logger = logger
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutdown_started = asyncio.Event()
        self.quiet = asyncio.Event()  # stopping, and no holder left
        self.stopped = asyncio.Event()
        self._scopes: set[anyio.CancelScope] = set()
        self._jobs: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        return self.state == "running"

    # ------------------------------------------------------------------ kill scopes

    @contextmanager
    def killable(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope that :meth:`kill_all` cancels (at once if it already ran)."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            if self.killed:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def kill_all(self) -> None:
        """Mark the manager killed and cancel every killable scope."""
        self.killed = True
        for scope in list(self._scopes):
            scope.cancel()

    def survive(self, exc: BaseException) -> None:
        """In a task of the manager's own: swallow a cancellation that is not kill()'s.

        Re-raises ``exc`` once the manager is killed; otherwise withdraws every cancel
        request pending on the current task, so that it carries on.
        """
        if self.killed:
            raise exc
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self.logger.warning("%s ignored a cancellation from outside the manager", task)
            while task.cancelling():
                task.uncancel()

    # -------------------------------------------------------------------- holders

    def hold(self) -> None:
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        self.check_quiet()

    def check_quiet(self) -> None:
        if self.holders == 0 and self.state == "stopping":
            self.quiet.set()

    # ----------------------------------------------------------------------- jobs

    def start(
        self,
        fn: Callable[[], Coroutine[Any, Any, Any]],
        *,
        name: str,
        hold: bool = True,
        finished: Callable[[], bool] = _never,
    ) -> None:
        """Run ``fn()`` as a task of the manager's own, holding a holder until it ends.

        If the task ends cancelled before ``finished()`` is true (it was cancelled from
        outside before its first step, or mid-way), ``fn()`` runs again in a new task.

        Args:
            fn: makes the job's coroutine; called again for a restart.
            name: the task's name, for debugging.
            hold: count the job as a holder while it runs.
            finished: whether the job has done its work even if its task was cancelled.
        """
        assert self.loop is not None, "the manager is not running"
        if hold:
            self.hold()
        task = self.loop.create_task(fn(), name=name)
        self._jobs.add(task)
        task.add_done_callback(lambda done: self._job_done(done, fn, name, hold, finished))

    def _job_done(
        self,
        task: asyncio.Task[Any],
        fn: Callable[[], Coroutine[Any, Any, Any]],
        name: str,
        hold: bool,
        finished: Callable[[], bool],
    ) -> None:
        self._jobs.discard(task)
        if task.cancelled():
            if not finished():
                self.logger.warning("%s was cancelled from outside the manager; restarting", name)
                self._jobs.add(restarted := self.loop.create_task(fn(), name=name))  # type: ignore[union-attr]
                restarted.add_done_callback(
                    lambda done: self._job_done(done, fn, name, hold, finished)
                )
                return
        elif task.exception() is not None:
            self.logger.error("%s failed: %r", name, task.exception())
        if hold:
            self.release()

    @property
    def jobs(self) -> int:
        """The manager's own tasks still running."""
        return len(self._jobs)
