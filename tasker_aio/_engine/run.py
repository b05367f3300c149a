"""The manager's life as every part sees it: its state, kill scopes and the work still held."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

__all__ = ["RunState", "State"]

State = Literal["new", "running", "stopping", "stopped"]


class RunState:
    """What the parts read of the manager's life, and the few things they all share.

    The lifecycle moves ``state`` and ``killed``; every other part only reads them. A
    *holder* is anything that may still hold a resource or answer a task (a worker, a
    ``run_task`` call, a pool refill): shutdown finishes once none is left.
    """

    __slots__ = ("_scopes", "_task_group", "holders", "killed", "quiet", "shutdown_started",
                 "state", "stopped")  # fmt: skip

    def __init__(self) -> None:
        self.state: State = "new"
        self.killed = False
        self.holders = 0
        self.shutdown_started = asyncio.Event()
        self.quiet = asyncio.Event()  # stopping, and no holder left
        self.stopped = asyncio.Event()
        self._scopes: set[anyio.CancelScope] = set()
        self._task_group: TaskGroup | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

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

    def hold(self) -> None:
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        self.check_quiet()

    def check_quiet(self) -> None:
        if self.holders == 0 and self.state == "stopping":
            self.quiet.set()

    def attach(self, task_group: TaskGroup) -> None:
        """The task group background jobs start in, once the manager runs."""
        self._task_group = task_group

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the manager's task group."""
        assert self._task_group is not None, "the manager's task group is not running"
        self._task_group.start_soon(fn, *args)
