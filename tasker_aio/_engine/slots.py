"""Slots: how many resources are alive, and the one cap on them (``max_resources``).

Each resource lives in a slot from the moment its creation starts until its destruction
ends (or is abandoned after ``destroy_timeout``). Whoever creates takes a slot first and
gives it back if the creation fails for good; destroying always gives the slot back.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable

__all__ = ["Slots"]


def _nothing() -> None:
    pass


class Slots:
    """Taken and free slots among ``max_resources``; creations wait for one in order.

    Attributes:
        live: slots taken: resources alive, being created or being destroyed.
        freed: called when a slot is freed and no creation waits for one (the
            ``run_task`` pool listens, to wake a caller waiting for room).
    """

    __slots__ = ("_cap", "_loop", "_waiters", "freed", "live")

    def __init__(
        self, max_resources: int | None, loop: Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        self._cap = max_resources if max_resources is not None else sys.maxsize
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()  # creations waiting for a slot
        self.live = 0
        self.freed: Callable[[], None] = _nothing

    @property
    def capped(self) -> bool:
        return self._cap != sys.maxsize

    def take_now(self) -> bool:
        """Take a slot if one is free and no creation waits for one."""
        if self.live < self._cap and not self._waiters:
            self.live += 1
            return True
        return False

    def take_all(self, count: int) -> None:
        """Take ``count`` slots at once (start-up: the config made sure they fit)."""
        self.live += count

    async def take(self) -> None:
        """Take a slot, waiting first come first served while none is free."""
        if self.take_now():
            return
        waiter = self._loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # free() hands its slot over: live already counts ours
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.free()  # handed a slot just as we were cancelled: pass it on
            elif waiter in self._waiters:  # free() may have skipped it already
                self._waiters.remove(waiter)
            raise

    def free(self) -> None:
        """Give a slot back: to the first creation waiting for one, else to ``freed``."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; live stays
                return
        self.live -= 1
        self.freed()
