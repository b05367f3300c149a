"""The public surface matches SPEC.md."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import tasker_aio
from tasker_aio import TaskManager

SPEC_NAMES = {
    "TaskManager", "Config", "TaskStats", "TaskMetrics", "TaskLifecycleTimestamps",
    "MetricsCollector", "Logger", "new_collector", "exponential_backoff",
    "TaskerError", "ConfigError", "ManagerStoppedError", "MaxRetriesExceededError",
    "ResourceCreationError", "QueueFullError", "__version__",
}  # fmt: skip
# Names later issues added: the lifecycle events, their stream and the tracer protocol
# (issue 18), the map() iterator and the callback type (issue 17).
ISSUE_NAMES = {
    "Event", "EventStream", "EventsLost", "ResourceCheckFailed", "ResourceCreated",
    "ResourceDestroyed", "ScalingDecided", "ShutdownBegan", "ShutdownFinished",
    "TaskFailed", "TaskRetried", "WorkerAdded", "WorkerReplaced", "WorkerRetired",
    "TaskTracer", "MapIterator", "Callback",
}  # fmt: skip

SUBMISSION_METHODS = [
    f"queue_task{priority}{once}{style}"
    for priority in ("", "_with_priority")
    for once in ("", "_once")
    for style in ("", "_with_callback", "_async")
]


def test_all_is_exactly_the_spec() -> None:
    """__all__ lists exactly the names of the contract (SPEC.md and the issues), sorted."""
    assert set(tasker_aio.__all__) == SPEC_NAMES | ISSUE_NAMES
    assert list(tasker_aio.__all__) == sorted(tasker_aio.__all__)
    for name in tasker_aio.__all__:
        assert hasattr(tasker_aio, name)


def test_package_ships_py_typed() -> None:
    """The package is marked as typed."""
    assert (Path(tasker_aio.__file__).parent / "py.typed").is_file()


def test_error_tree() -> None:
    """Every library error derives from TaskerError; ConfigError is also a ValueError."""
    for name in ("ConfigError", "ManagerStoppedError", "MaxRetriesExceededError",
                 "ResourceCreationError", "QueueFullError"):  # fmt: skip
        assert issubclass(getattr(tasker_aio, name), tasker_aio.TaskerError)
    assert issubclass(tasker_aio.ConfigError, ValueError)


def test_twelve_queue_methods_and_their_kinds() -> None:
    """The awaiting forms are coroutine functions; callback and async forms are plain."""
    assert len(SUBMISSION_METHODS) == 12
    for name in SUBMISSION_METHODS:
        method = getattr(TaskManager, name)
        if name.endswith(("_with_callback", "_async")):
            assert not inspect.iscoroutinefunction(method), name
        else:
            assert inspect.iscoroutinefunction(method), name
    assert not inspect.iscoroutinefunction(TaskManager.submit)
    assert inspect.iscoroutinefunction(TaskManager.run_task)
    assert not inspect.iscoroutinefunction(TaskManager.map)


def test_submit_signature() -> None:
    """submit() takes fn plus keyword-only priority, once, retries, backoff."""
    params = inspect.signature(TaskManager.submit).parameters
    assert list(params) == ["self", "fn", "priority", "once", "retries", "backoff"]
    for name in ("priority", "once", "retries", "backoff"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["retries"].default is None and params["backoff"].default is None


def test_exponential_backoff_formula() -> None:
    """Without jitter the delay is min(maximum, initial * multiplier**(attempt-1))."""
    backoff = tasker_aio.exponential_backoff(initial=0.5, maximum=3.0, multiplier=2.0, jitter=False)
    assert [backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff(10**6) == 3.0


def test_exponential_backoff_jitter_stays_in_range() -> None:
    """Full jitter draws each delay from [0, the capped exponential delay]."""
    backoff = tasker_aio.exponential_backoff(initial=0.1, maximum=1.0)
    for attempt in range(1, 20):
        assert 0.0 <= backoff(attempt) <= min(1.0, 0.1 * 2 ** (attempt - 1))


def test_future_type_of_async_forms() -> None:
    """The *_async forms are annotated to return an asyncio.Future."""
    hints = inspect.get_annotations(TaskManager.queue_task_async, eval_str=True)
    assert hints["return"].__origin__ is asyncio.Future
