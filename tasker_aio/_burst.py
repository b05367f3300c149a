"""Burst scaling: a pure decision function and the thin loop that applies it.

``decide`` adds workers only when work is waiting and no worker is free, by the
deficit the rates show (at least one), capped so that ready + in-creation workers
never exceed the maximum. It retires only burst workers that have sat idle for a
whole grace period with both queues empty. The two conditions cannot hold at once,
which is the hysteresis that keeps a steady load from oscillating; and retiring
depends on idleness, not on the rate window, so scale-down follows a stop quickly.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import anyio

from ._metrics import TaskMetrics, TaskStats
from ._worker import READY

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["decide", "idle_grace", "run_burst"]


def idle_grace(interval: float) -> float:
    """How long a burst worker must sit idle before it may be retired."""
    return max(2 * interval, 0.1)


def decide(
    metrics: TaskMetrics,
    stats: TaskStats,
    *,
    maximum: int,
    creating: int = 0,
    idle_burst: int = 0,
) -> int:
    """How many workers to add (> 0) or retire (< 0); pure, no clock, no I/O.

    Args:
        metrics: the collector's snapshot (arrival and completion rates).
        stats: the manager's snapshot.
        maximum: ``max_worker_count``.
        creating: workers creating or destroying their resource (they count toward
            ``maximum``, so live resources never exceed it).
        idle_burst: burst workers idle for at least the grace period.
    """
    backlog = stats.queued_tasks + stats.priority_tasks
    if backlog == 0:
        return -min(idle_burst, stats.burst_workers) if idle_burst else 0
    active = stats.active_workers
    if stats.running_tasks < active:
        return 0  # a free worker is about to take the backlog
    room = maximum - active - creating
    if room <= 0:
        return 0
    deficit = 1
    arrivals, completions = metrics.task_arrival_rate, metrics.task_completion_rate
    if active and completions > 0 and arrivals > completions:
        # Each worker completes completions/active tasks per second.
        deficit = max(1, math.ceil(active * arrivals / completions) - active)
    return max(0, min(deficit - creating, backlog, room))


async def run_burst(manager: TaskManager[Any, Any]) -> None:
    """Every ``burst_interval`` seconds, apply :func:`decide`."""
    m = manager
    settings = m._settings
    interval = settings.burst_interval
    assert interval is not None
    grace = idle_grace(interval)
    with anyio.CancelScope() as scope:
        m._burst_scope = scope
        while m.state == "running":
            await anyio.sleep(interval)
            try:
                metrics = m._collector.metrics()
            except Exception as exc:
                m._logger.error("metrics collector raised %r; skipping a scaling step", exc)
                continue
            now = time.monotonic()
            creating = idle_burst = 0
            for worker in m._workers:
                if worker.phase != READY:  # creating or closing: still holds a slot
                    creating += 1
                elif worker.spare(now, grace):
                    idle_burst += 1
            change = decide(
                metrics,
                m.stats(),
                maximum=settings.max_worker_count,
                creating=creating,
                idle_burst=idle_burst,
            )
            if change > 0 and m.state == "running":
                m._logger.info("adding %d burst workers", change)
                for _ in range(change):
                    m._spawn_worker(burst=True)
            elif change < 0:
                retired = m._retire(-change, grace)
                m._logger.info("retired %d idle burst workers", retired)
