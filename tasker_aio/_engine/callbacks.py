"""Delivering outcomes to callbacks, sync or async."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from .._types import Callback
from .hooks import HookError, Hooks

__all__ = ["Callbacks"]


class Callbacks:
    """Calls each task's callback with ``(result, None)`` or ``(None, error)``.

    An async callback runs as a task the manager owns (a future's done-callback is not a
    context in which anyio can start a task); :meth:`finish` waits for them. Whatever a
    callback raises is logged and contained.
    """

    __slots__ = ("_hooks", "_tasks")

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks
        self._tasks: set[asyncio.Task[Any]] = set()

    def attach(self, future: asyncio.Future[Any], callback: Callback[Any]) -> None:
        """Deliver ``future``'s outcome to ``callback`` once it is done."""
        future.add_done_callback(lambda f: self._deliver(callback, f))

    def _deliver(self, callback: Callback[Any], future: asyncio.Future[Any]) -> None:
        result: Any = None
        error: BaseException | None
        if future.cancelled():
            error = asyncio.CancelledError()
        else:
            error = future.exception()
            if error is None:
                result = future.result()
        returned = self._hooks.call("task callback", callback, result, error, default=None)
        if inspect.isawaitable(returned):
            task = future.get_loop().create_task(
                self._finish_one(returned, callback), name="tasker_aio: task callback"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish_one(self, awaitable: Awaitable[Any], callback: object) -> None:
        try:
            await self._hooks.call_async("task callback", lambda: awaitable)
        except HookError as exc:
            self._hooks.logger.error("task callback %r raised %r", callback, exc.error)

    async def finish(self) -> None:
        """Wait for the callbacks of every answered task, including async ones."""
        try:
            while True:
                await asyncio.sleep(0)  # let pending future callbacks run
                if not self._tasks:
                    return
                await asyncio.wait(list(self._tasks))
        except BaseException:
            for task in self._tasks:
                task.cancel()
            raise
