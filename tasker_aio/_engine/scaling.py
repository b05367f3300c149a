"""Burst scaling: a pure decision function and the thin loop that applies it.

``decide`` adds workers only when work is waiting and no worker is free, by the
deficit the rates show (at least one), capped so that ready + in-creation workers
never exceed the maximum. It retires only burst workers that have sat idle for a
whole grace period with both queues empty. The two conditions cannot hold at once,
which is the hysteresis that keeps a steady load from oscillating; and retiring
depends on idleness, not on the rate window, so scale-down follows a stop quickly.

The loop sees the manager only through a :class:`ScalingView` (read-only) and two
:class:`ScalingActions`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from .._snapshots import TaskMetrics, TaskStats
from .hooks import SafeLogger

__all__ = ["ScalingActions", "ScalingView", "decide", "idle_grace", "run_scaling"]


@dataclass(frozen=True, slots=True)
class ScalingView:
    """What the scaling loop may read."""

    running: Callable[[], bool]
    metrics: Callable[[], TaskMetrics | None]  # the collector's; None if it failed
    stats: Callable[[], TaskStats]
    # (workers holding a slot without being ready, burst workers idle for the grace)
    slots: Callable[[float], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class ScalingActions:
    """What the scaling loop may do."""

    add: Callable[[int], None]  # start this many burst workers
    retire: Callable[[int, float], int]  # retire up to n burst workers idle for s; how many


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


async def run_scaling(
    view: ScalingView,
    act: ScalingActions,
    *,
    interval: float,
    maximum: int,
    logger: SafeLogger,
) -> None:
    """Every ``interval`` seconds, apply :func:`decide` while the manager runs."""
    grace = idle_grace(interval)
    while view.running():
        await anyio.sleep(interval)
        metrics = view.metrics()
        if metrics is None:  # the collector failed (logged): skip this step
            continue
        creating, idle_burst = view.slots(grace)
        change = decide(
            metrics, view.stats(), maximum=maximum, creating=creating, idle_burst=idle_burst
        )
        if change > 0 and view.running():
            logger.info("adding %d burst workers", change)
            act.add(change)
        elif change < 0:
            retired = act.retire(-change, grace)
            logger.info("retired %d idle burst workers", retired)
