"""Section 3: what the default metrics collector costs per task, and what observing it adds.

The observed rows (``benchmarks/_observed.py``) attach the Prometheus exporter, the
OpenTelemetry metrics or an OpenTelemetry tracer to a manager with the default
collector; the report gives their cost over the default collector's row of the same run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial

from ._common import (
    PER_TASK,
    WORKERS,
    Case,
    LoopFactory,
    Runner,
    median,
    progress,
    run_on,
    submitters_for,
    trivial,
)
from ._observed import observed_systems
from ._systems import (
    METRICS_OFF,
    NoopCollector,
    raw_closed,
    raw_gather,
    tasker_queue_task_closed,
    tasker_submit_gather,
)

__all__ = ["MetricsRow", "run_metrics_cost"]


@dataclass(frozen=True)
class MetricsRow:
    loop: str
    style: str
    system: str
    n: int
    us_per_task: float
    ratio_to_floor: float
    cpu_us_per_task: float  # the process's CPU time: steadier on a shared machine
    samples_us: list[float]
    cpu_samples_us: list[float]


_SYSTEMS: list[tuple[str, str, Runner]] = [
    ("closed", "tasker queue_task, default collector", tasker_queue_task_closed),
    (
        "closed",
        "tasker queue_task, no-op custom collector",
        partial(tasker_queue_task_closed, collector=NoopCollector()),
    ),
    (
        "closed",
        "tasker queue_task, metrics hooks off",
        partial(tasker_queue_task_closed, collector=METRICS_OFF),
    ),
    ("closed", "raw floor", raw_closed),
    ("gather", "tasker submit, default collector", tasker_submit_gather),
    (
        "gather",
        "tasker submit, no-op custom collector",
        partial(tasker_submit_gather, collector=NoopCollector()),
    ),
    (
        "gather",
        "tasker submit, metrics hooks off",
        partial(tasker_submit_gather, collector=METRICS_OFF),
    ),
    ("gather", "raw floor", raw_gather),
]


def run_metrics_cost(
    loops: dict[str, LoopFactory], n: int, reps: int, notes: list[str] | None = None
) -> list[MetricsRow]:
    """Trivial tasks with the default collector, a no-op custom one, the metrics hooks
    off, no manager at all, and the default collector observed by each exporter."""
    case = Case(trivial, n, WORKERS, submitters_for(WORKERS))
    observed = observed_systems(notes if notes is not None else [])
    # Each style's rows together, the observed ones after the style's own.
    systems = sorted([*_SYSTEMS, *observed], key=lambda system: system[0] != "closed")
    samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    cpu_samples: dict[tuple[str, int], list[float]] = defaultdict(list)
    for rep in range(reps):
        for loop_name, factory in loops.items():
            progress(f"metrics cost: repetition {rep + 1}/{reps} on {loop_name}")
            for index, (_style, _label, run) in enumerate(systems):
                timing = run_on(factory, partial(run, case), collect=False)
                samples[loop_name, index].append(timing.wall / n * PER_TASK)
                cpu_samples[loop_name, index].append(timing.cpu / n * PER_TASK)
    rows = []
    for loop_name in loops:
        floors = {
            style: median(samples[loop_name, index])
            for index, (style, label, _) in enumerate(systems)
            if label == "raw floor"
        }
        for index, (style, label, _) in enumerate(systems):
            us = median(samples[loop_name, index])
            rows.append(
                MetricsRow(
                    loop=loop_name,
                    style=style,
                    system=label,
                    n=n,
                    us_per_task=us,
                    ratio_to_floor=us / floors[style],
                    cpu_us_per_task=median(cpu_samples[loop_name, index]),
                    samples_us=samples[loop_name, index],
                    cpu_samples_us=cpu_samples[loop_name, index],
                )
            )
    return rows
