"""What a failed task's error is, and whether it broke its resource."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .hooks import Hooks

__all__ = ["NOT_CALLED", "HealthCheck", "task_error"]

NOT_CALLED: Any = object()  # what a task "returned" when calling its function raised


def task_error(fn: object, returned: object, exc: BaseException) -> BaseException:
    """The error a task's caller gets for ``exc``.

    It names what went wrong when a task function returned something un-awaitable, and
    wraps ``StopIteration`` and ``StopAsyncIteration`` in a ``RuntimeError`` (as PEP 479
    does for generators): a Future refuses the first, and the second would end the
    caller's ``async for`` (say, over ``map()``) as if the results had run out.
    """
    if type(exc) is TypeError and returned is not NOT_CALLED and not inspect.isawaitable(returned):
        return TypeError(f"task function {fn!r} returned {returned!r}, not an awaitable")
    if isinstance(exc, (StopIteration, StopAsyncIteration)):
        error = RuntimeError(f"task raised {exc!r}")
        error.__cause__ = exc
        return error
    return exc


class HealthCheck:
    """``Config.check_health`` made safe: True (healthy) when there is none or it fails.

    It fails if it raises anything or returns an awaitable (it must be a plain function:
    the config refuses an ``async def``, this catches a callable object that returns a
    coroutine).
    """

    __slots__ = ("_check", "_hooks")

    def __init__(self, check: Callable[[BaseException], bool] | None, hooks: Hooks) -> None:
        self._check = check
        self._hooks = hooks

    def __call__(self, exc: BaseException) -> bool:
        check = self._check
        if check is None:
            return True
        verdict: Any = self._hooks.call("check_health", check, exc, default=True)
        if inspect.isawaitable(verdict):
            if inspect.iscoroutine(verdict):
                verdict.close()
            self._hooks.logger.error(
                "check_health %r returned %r, not a bool; treating %r as healthy",
                check,
                verdict,
                exc,
            )
            return True
        return bool(verdict)
