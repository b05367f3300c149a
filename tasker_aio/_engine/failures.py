"""What a failed task's error is, and whether it broke its resource."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .._types import Logger

__all__ = ["NOT_CALLED", "HealthCheck", "task_error"]

NOT_CALLED: Any = object()  # what a task "returned" when calling its function raised


def task_error(fn: object, returned: object, exc: BaseException) -> BaseException:
    """The error a task's caller gets for ``exc``.

    It names what went wrong when a task function returned something un-awaitable, and
    wraps a ``StopIteration`` (a Future refuses it) in a ``RuntimeError``.
    """
    if type(exc) is TypeError and returned is not NOT_CALLED and not inspect.isawaitable(returned):
        return TypeError(f"task function {fn!r} returned {returned!r}, not an awaitable")
    if isinstance(exc, StopIteration):
        error = RuntimeError(f"task raised {exc!r}")
        error.__cause__ = exc
        return error
    return exc


class HealthCheck:
    """``Config.check_health`` made safe: True (healthy) when there is none or it raises."""

    __slots__ = ("_check", "_logger")

    def __init__(self, check: Callable[[BaseException], bool] | None, logger: Logger) -> None:
        self._check = check
        self._logger = logger

    def __call__(self, exc: BaseException) -> bool:
        check = self._check
        if check is None:
            return True
        try:
            return bool(check(exc))
        except Exception as error:
            self._logger.error("check_health raised %r; treating %r as healthy", error, exc)
            return True
