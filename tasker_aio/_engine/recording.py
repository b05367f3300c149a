"""The engine's hooks into the metrics collector."""

from __future__ import annotations

from .._metrics import HdrCollector, Outcome, Recorders, stamps
from .._types import MetricsCollector
from .hooks import Hooks

__all__ = ["recorders"]


def recorders(collector: MetricsCollector, hooks: Hooks) -> Recorders:
    """The manager's arrival, completion, failure, retry and tidy hooks for ``collector``.

    The first three are one call per task. The default collector's are its logs' own
    ``append`` and ``extend``, with the counting done later in batches. Any other
    collector gets the protocol's calls, with the TaskLifecycleTimestamps built for it,
    each through :class:`Hooks`: a collector that raises loses that one event (logged),
    never a task or a worker.
    """
    if type(collector) is HdrCollector:
        return collector.recorders()
    call = hooks.call

    def arrival(now: float) -> None:
        call("collector.record_arrival", collector.record_arrival, default=None)

    def completion(result: Outcome) -> None:
        call(
            "collector.record_completion", collector.record_completion, stamps(result), default=None
        )

    def failure(result: Outcome) -> None:
        call("collector.record_failure", collector.record_failure, stamps(result), default=None)

    def retry() -> None:
        call("collector.record_retry", collector.record_retry, default=None)

    def tidy() -> None:
        pass

    return Recorders(arrival, completion, failure, retry, tidy)
