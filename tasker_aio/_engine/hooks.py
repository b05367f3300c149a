"""Calling user code: every hook, callback, logger and collector call goes through here.

User code may raise anything (``BaseException`` included), raise a stray
``CancelledError`` (an awaited future inside it was cancelled, though nobody cancelled
the task), or return something unexpected. The manager survives all of it: what a hook
raises is contained, logged with the hook's name, and turned into the hook's failure.
The one thing that gets through is a real cancellation of the calling task (``kill()``,
or a caller giving up), which the caller of the hook handles.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .._types import Logger

__all__ = ["HookError", "Hooks", "SafeLogger", "cancelled_for_real"]

T = TypeVar("T")


class HookError(Exception):
    """A hook failed; ``__cause__`` is what it raised (a stray ``CancelledError`` too)."""

    def __init__(self, hook: str, error: BaseException) -> None:
        super().__init__(f"{hook} raised {error!r}")
        self.hook = hook
        self.error = error


def cancelled_for_real(task: asyncio.Task[Any] | None, cancelling_before: int) -> bool:
    """Whether a ``CancelledError`` seen now was a cancellation of ``task`` itself.

    A real cancellation (``task.cancel()``: by ``kill()``, anyio's cancel scopes, or a
    caller) raises the task's pending-cancel count; a stray one, raised by code that
    awaited a future somebody else cancelled, leaves it as it was.
    """
    return task is not None and task.cancelling() > cancelling_before


class SafeLogger:
    """The configured logger, made safe: a logging call never raises into the manager.

    If the logger itself raises, the message goes to ``stderr`` with what it raised.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: Logger) -> None:
        self._logger = logger

    def debug(self, msg: str, *args: Any) -> None:
        self._log("debug", msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log("info", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log("warning", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._log("error", msg, args)

    def _log(self, level: str, msg: str, args: tuple[Any, ...]) -> None:
        try:
            getattr(self._logger, level)(msg, *args)
        except BaseException as exc:  # a logger must never hurt the manager
            try:
                text = msg % args if args else msg
            except BaseException:
                text = f"{msg} {args!r}"
            try:
                print(
                    f"tasker_aio: logger {self._logger!r}.{level}() raised {exc!r};"
                    f" the message was: {text}",
                    file=sys.stderr,
                )
            except BaseException:  # no stderr either: nothing more to do
                pass


class Hooks:
    """Calls user code for the engine, containing whatever it raises."""

    __slots__ = ("logger",)

    def __init__(self, logger: SafeLogger) -> None:
        self.logger = logger

    def call(self, name: str, fn: Callable[..., T], *args: Any, default: T) -> T:
        """``fn(*args)``, or ``default`` (logged) if it raised anything."""
        try:
            return fn(*args)
        except BaseException as exc:  # see the module docstring
            self.logger.error("%s %r raised %r", name, fn, exc)
            return default

    async def call_async(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, awaited if it returns an awaitable.

        Raises:
            HookError: the hook raised anything, a stray ``CancelledError`` included.
            asyncio.CancelledError: the calling task itself was cancelled meanwhile.
        """
        task = asyncio.current_task()
        before = task.cancelling() if task is not None else 0
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result
        except asyncio.CancelledError as exc:
            if cancelled_for_real(task, before):
                raise
            raise HookError(name, exc) from exc
        except BaseException as exc:  # see the module docstring
            raise HookError(name, exc) from exc
