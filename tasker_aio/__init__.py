"""tasker_aio: run concurrent asyncio tasks on long-lived resources.

A port and superset of the Go library ``tasker``: coroutine workers that each hold one
resource, a priority and a main queue, health checks that replace broken workers,
retries with backoff, burst scaling, an immediate ``run_task`` path, graceful and
immediate shutdown, and live statistics and latency percentiles.
"""

from __future__ import annotations

from ._backoff import exponential_backoff as exponential_backoff
from ._config import Config as Config
from ._exceptions import ConfigError as ConfigError
from ._exceptions import ManagerStoppedError as ManagerStoppedError
from ._exceptions import MaxRetriesExceededError as MaxRetriesExceededError
from ._exceptions import QueueFullError as QueueFullError
from ._exceptions import ResourceCreationError as ResourceCreationError
from ._exceptions import TaskerError as TaskerError
from ._manager import TaskManager as TaskManager
from ._metrics import new_collector as new_collector
from ._snapshots import TaskLifecycleTimestamps as TaskLifecycleTimestamps
from ._snapshots import TaskMetrics as TaskMetrics
from ._snapshots import TaskStats as TaskStats
from ._types import Logger as Logger
from ._types import MetricsCollector as MetricsCollector

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Logger",
    "ManagerStoppedError",
    "MaxRetriesExceededError",
    "MetricsCollector",
    "QueueFullError",
    "ResourceCreationError",
    "TaskLifecycleTimestamps",
    "TaskManager",
    "TaskMetrics",
    "TaskStats",
    "TaskerError",
    "__version__",
    "exponential_backoff",
    "new_collector",
]
