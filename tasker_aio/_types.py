"""Public Protocols and the type aliases shared by the private modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from ._snapshots import TaskLifecycleTimestamps, TaskMetrics

__all__ = ["Callback", "E", "Logger", "MetricsCollector", "R", "T", "TaskFn"]

R = TypeVar("R")  # the resource a worker holds
E = TypeVar("E")  # a task's result
T = TypeVar("T")  # an input item of map()

TaskFn = Callable[[R], Awaitable[E]]
Callback = Callable[[E | None, BaseException | None], Any]


@runtime_checkable
class Logger(Protocol):
    """What tasker_aio logs through: the stdlib ``logging`` call style.

    A ``logging.Logger`` or a structlog logger fits as is.
    """

    def debug(self, msg: str, *args: Any) -> Any: ...
    def info(self, msg: str, *args: Any) -> Any: ...
    def warning(self, msg: str, *args: Any) -> Any: ...
    def error(self, msg: str, *args: Any) -> Any: ...


@runtime_checkable
class MetricsCollector(Protocol):
    """Receives the manager's task events and reports :class:`TaskMetrics`.

    Counting: every accepted submission is one arrival; a task that finishes with a
    value is a completion; one that finishes with an exception after its last attempt
    is a failure; each re-run is a retry. The manager calls these on the event loop
    thread, once per event, so they must be cheap and must not block.
    """

    def record_arrival(self) -> None: ...
    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None: ...
    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None: ...
    def record_retry(self) -> None: ...
    def metrics(self) -> TaskMetrics: ...
