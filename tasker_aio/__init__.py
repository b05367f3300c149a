"""tasker_aio: run concurrent asyncio tasks on long-lived resources.

A port and superset of the Go library ``tasker``: coroutine workers that each hold one
resource, a priority and a main queue, health checks that replace broken workers,
retries with backoff, burst scaling, an immediate ``run_task`` path, graceful and
immediate shutdown, and live statistics and latency percentiles.
"""

from __future__ import annotations

from ._backoff import exponential_backoff as exponential_backoff
from ._config import Config as Config
from ._engine.events import EventStream as EventStream
from ._events import Event as Event
from ._events import EventsLost as EventsLost
from ._events import ResourceCheckFailed as ResourceCheckFailed
from ._events import ResourceCreated as ResourceCreated
from ._events import ResourceDestroyed as ResourceDestroyed
from ._events import ScalingDecided as ScalingDecided
from ._events import ShutdownBegan as ShutdownBegan
from ._events import ShutdownFinished as ShutdownFinished
from ._events import TaskFailed as TaskFailed
from ._events import TaskRetried as TaskRetried
from ._events import WorkerAdded as WorkerAdded
from ._events import WorkerReplaced as WorkerReplaced
from ._events import WorkerRetired as WorkerRetired
from ._exceptions import ConfigError as ConfigError
from ._exceptions import ManagerStoppedError as ManagerStoppedError
from ._exceptions import MaxRetriesExceededError as MaxRetriesExceededError
from ._exceptions import QueueFullError as QueueFullError
from ._exceptions import ResourceCreationError as ResourceCreationError
from ._exceptions import TaskerError as TaskerError
from ._manager import TaskManager as TaskManager
from ._map import MapIterator as MapIterator
from ._metrics import new_collector as new_collector
from ._snapshots import TaskLifecycleTimestamps as TaskLifecycleTimestamps
from ._snapshots import TaskMetrics as TaskMetrics
from ._snapshots import TaskStats as TaskStats
from ._types import Callback as Callback
from ._types import Logger as Logger
from ._types import MetricsCollector as MetricsCollector
from ._types import TaskTracer as TaskTracer

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "Config",
    "ConfigError",
    "Event",
    "EventStream",
    "EventsLost",
    "Logger",
    "ManagerStoppedError",
    "MapIterator",
    "MaxRetriesExceededError",
    "MetricsCollector",
    "QueueFullError",
    "ResourceCheckFailed",
    "ResourceCreated",
    "ResourceCreationError",
    "ResourceDestroyed",
    "ScalingDecided",
    "ShutdownBegan",
    "ShutdownFinished",
    "TaskFailed",
    "TaskLifecycleTimestamps",
    "TaskManager",
    "TaskMetrics",
    "TaskRetried",
    "TaskStats",
    "TaskTracer",
    "TaskerError",
    "WorkerAdded",
    "WorkerReplaced",
    "WorkerRetired",
    "__version__",
    "exponential_backoff",
    "new_collector",
]
