"""Idle workers and how they are woken."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

__all__ = ["IdleWorkers", "Sleeper"]


class Sleeper(Protocol):
    """An idle worker: it waits on ``waiter`` until woken."""

    waiter: asyncio.Future[None] | None


class IdleWorkers:
    """Idle workers, woken last-in first-out and base workers before burst ones.

    So spare burst workers stay idle long enough to be retired, instead of sharing the
    work round-robin. Each worker appends itself to ``base`` or ``burst`` as it goes idle.
    """

    __slots__ = ("base", "burst")

    def __init__(self) -> None:
        self.base: deque[Sleeper] = deque()
        self.burst: deque[Sleeper] = deque()

    def __len__(self) -> int:
        return len(self.base) + len(self.burst)

    def wake_one(self) -> None:
        for idle in (self.base, self.burst):
            while idle:
                waiter = idle.pop().waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                    return

    def wake_all(self) -> None:
        """Wake every idle worker (shutdown: let them see the drain and leave)."""
        sleepers = [*self.base, *self.burst]
        self.base.clear()
        self.burst.clear()
        for sleeper in sleepers:
            waiter = sleeper.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def remove(self, sleeper: Sleeper) -> None:
        """Take ``sleeper`` out of the line, if it is in it."""
        for idle in (self.base, self.burst):
            try:
                idle.remove(sleeper)
                return
            except ValueError:
                pass
