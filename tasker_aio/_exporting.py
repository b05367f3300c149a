"""What the exporters (``tasker_aio.prometheus``, ``tasker_aio.otel``) share.

They read a manager, never replace its collector: counts from ``metrics()``, gauges from
``stats()``, and durations from the default collector itself when the manager uses it.
"""

from __future__ import annotations

from typing import Any

from ._manager import TaskManager
from ._metrics import HdrCollector

__all__ = ["DEFAULT_BUCKETS", "default_collector"]

DEFAULT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
"""Histogram bucket bounds in seconds: 0.5 ms to a minute, about 2.5x apart."""


def default_collector(manager: TaskManager[Any, Any]) -> HdrCollector | None:
    """``manager``'s collector if it is the default one (histograms can be read), else None.

    Raises:
        TypeError: ``manager`` is not a TaskManager.
    """
    if not isinstance(manager, TaskManager):
        raise TypeError(f"manager must be a TaskManager, got {manager!r}")
    # TaskManager has no public accessor for its collector (yet): this is the one read
    # of its private state outside the engine (allowed in tests/test_architecture.py).
    collector = manager._settings.collector
    return collector if type(collector) is HdrCollector else None
