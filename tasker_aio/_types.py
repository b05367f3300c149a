"""Public Protocols and the type aliases shared by the private modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from ._snapshots import TaskLifecycleTimestamps, TaskMetrics

__all__ = [
    "Callback", "E", "Logger", "MetricsCollector", "R", "Result", "T", "TaskFn", "TaskTracer",
]  # fmt: skip

R = TypeVar("R")  # the resource a worker holds
E = TypeVar("E")  # a task's result
T = TypeVar("T")  # a task's result, per call; or an input item of map()
if TYPE_CHECKING:
    # TaskManager[R] means TaskManager[R, Any]: results are typed per call, and the
    # second parameter stays for code written as TaskManager[R, E] (PEP 696 default).
    from typing_extensions import TypeVar as _TypeVarWithDefault

    Result = _TypeVarWithDefault("Result", default=Any)
else:
    Result = TypeVar("Result")  # the default is applied by TaskManager.__class_getitem__

TaskFn = Callable[[R], Awaitable[E]]
Callback = Callable[[E | None, BaseException | None], Any]
"""``callback(result, error)``: ``(value, None)`` on success, ``(None, exc)`` on failure."""


@runtime_checkable
class Logger(Protocol):
    """What tasker_aio logs through: the stdlib ``logging`` call style.

    A ``logging.Logger`` or a structlog logger fits as is.
    """

    def debug(self, msg: str, *args: Any) -> Any:
        """Per-task events (a healthy retry, with its attempt and delay)."""
        ...

    def info(self, msg: str, *args: Any) -> Any:
        """Start, stop, kill and scaling decisions."""
        ...

    def warning(self, msg: str, *args: Any) -> Any:
        """A worker's resource replaced (with why), a failed check, a bounded stop expired."""
        ...

    def error(self, msg: str, *args: Any) -> Any:
        """A hook, callback or collector that raised; a failed on_create or on_destroy."""
        ...


@runtime_checkable
class MetricsCollector(Protocol):
    """Receives the manager's task events and reports :class:`TaskMetrics`.

    Counting: every accepted submission is one arrival; a task that finishes with a
    value is a completion; one that finishes with an exception after its last attempt
    is a failure; each re-run is a retry. The manager calls these on the event loop
    thread, once per event, so they must be cheap and must not block.
    """

    def record_arrival(self) -> None:
        """A submission was accepted (queued, or a ``run_task`` call began)."""
        ...

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        """A task finished with a value; ``stamps`` of its last run."""
        ...

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        """A task was answered with an error after it ran (including kill and cancel)."""
        ...

    def record_retry(self) -> None:
        """A failed task will run again (healthy or unhealthy re-run)."""
        ...

    def metrics(self) -> TaskMetrics:
        """The metrics so far; what ``TaskManager.metrics()`` returns."""
        ...


@runtime_checkable
class TaskTracer(Protocol):
    """Follows each task from admission to its answer (``Config.tracer``).

    ``tasker_aio.otel.tracer()`` is the OpenTelemetry one: a span per task covering its
    wait in the queue and its runs, a child of the submitting caller's current span.
    Each method is called once per event of one task, on the event loop's thread.
    Whatever a method raises is logged and otherwise ignored.
    """

    def begin(self, priority: bool) -> Any:
        """A task was admitted to a queue; called in the submitting caller's context.

        Returns:
            The task's trace (anything); it is handed to the other methods.
        """
        ...

    def enter(self, trace: Any, burst: bool) -> Any:
        """A worker (``burst`` or base) is about to run the task.

        The task's function runs in the worker's asyncio task right after this returns,
        until :meth:`leave`: context set here (``contextvars``) is what it sees.

        Returns:
            A token for :meth:`leave`.
        """
        ...

    def leave(self, token: Any) -> None:
        """The run that :meth:`enter` began has ended (returned or raised)."""
        ...

    def end(self, trace: Any, outcome: str, attempts: int, error: BaseException | None) -> None:
        """The task was answered.

        Args:
            trace: what :meth:`begin` returned.
            outcome: ``"completed"``, ``"failed"``, ``"cancelled"`` (its caller gave up),
                ``"discarded"`` (cancelled before it ran again) or ``"killed"``.
            attempts: how many times it ran.
            error: what its caller got, when it failed.
        """
        ...
