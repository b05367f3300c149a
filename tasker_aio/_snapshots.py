"""The snapshots the manager hands out: TaskStats, TaskMetrics, TaskLifecycleTimestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["TaskLifecycleTimestamps", "TaskMetrics", "TaskStats"]


class TaskLifecycleTimestamps(NamedTuple):
    """When a task was queued, started and finished (``time.monotonic()`` seconds).

    For a re-run task, ``queued_at`` is when it was last re-queued.
    """

    queued_at: float
    started_at: float
    finished_at: float


@dataclass(frozen=True, slots=True)
class TaskStats:
    """A consistent snapshot of the manager's state.

    ``active_workers == base_workers + burst_workers``: workers alive and ready to take
    tasks. Workers still creating their resource are not counted.
    """

    base_workers: int
    active_workers: int
    burst_workers: int
    queued_tasks: int
    priority_tasks: int
    running_tasks: int
    available_resources: int


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """Performance metrics; durations in seconds, rates in tasks per second.

    Execution and wait times describe completed tasks; failures are counted, not timed.
    """

    average_execution_time: float = 0.0
    min_execution_time: float = 0.0
    max_execution_time: float = 0.0
    p50_execution_time: float = 0.0
    p95_execution_time: float = 0.0
    p99_execution_time: float = 0.0
    average_wait_time: float = 0.0
    p95_wait_time: float = 0.0
    p99_wait_time: float = 0.0
    task_arrival_rate: float = 0.0
    task_completion_rate: float = 0.0
    total_tasks_arrived: int = 0
    total_tasks_completed: int = 0
    total_tasks_failed: int = 0
    total_tasks_retried: int = 0
    success_rate: float = 0.0
    failure_rate: float = 0.0
