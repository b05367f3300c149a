"""Section 1: the same workloads through every system, interleaved, on every loop."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial

from ._common import PER_TASK, Case, LoopFactory, Workload, median, progress, run_on, submitters_for
from ._systems import System

__all__ = ["FLOOR_OF_STYLE", "ThroughputRow", "run_throughput"]

FLOOR_OF_STYLE = {"closed": "raw.closed", "gather": "raw.gather"}
_WARMUP_TASKS = 500
_PROBE_TASKS = 20


@dataclass(frozen=True)
class ThroughputRow:
    """The median of one system on one workload and loop, against its raw floor."""

    loop: str
    workload: str
    system: str
    label: str
    group: str
    style: str
    n: int
    concurrency: int
    submitters: int
    us_per_task: float
    us_min: float
    us_max: float
    tasks_per_s: float
    ratio_to_floor: float  # median over the floor's median
    ratio_of_minima: float  # fastest repetition over the floor's fastest
    samples_us: list[float]


def _case(workload: Workload, n: int) -> Case:
    return Case(workload.fn, n, workload.concurrency, submitters_for(workload.concurrency))


def _working(
    loops: dict[str, LoopFactory],
    workloads: list[Workload],
    systems: list[System],
    notes: list[str],
) -> list[System]:
    """The systems that run a few tasks of each workload; a failing peer is noted, dropped."""
    working = []
    for system in systems:
        try:
            for factory in loops.values():
                for workload in workloads:
                    run_on(factory, partial(system.run, _case(workload, _PROBE_TASKS)))
        except Exception as exc:
            if system.group != "peer":
                raise
            notes.append(f"{system.label} skipped: it failed with {exc!r}")
        else:
            working.append(system)
    return working


def run_throughput(
    loops: dict[str, LoopFactory],
    workloads: list[Workload],
    systems: list[System],
    reps: int,
    quick: bool,
    notes: list[str],
    warmup: bool = True,
) -> list[ThroughputRow]:
    """Every (loop, workload, system) ``reps`` times, interleaved: medians per task.

    A peer that fails on a probe run first is noted in ``notes`` and left out.

    Each repetition runs every combination once, in an order rotated by one system per
    repetition, each on a fresh event loop; so drift and noise on this machine spread
    over all systems instead of landing on one.
    """
    systems = _working(loops, workloads, systems, notes)
    for loop_name, factory in loops.items() if warmup else ():
        progress(f"throughput: warm-up on {loop_name}")
        for workload in workloads:
            for system in systems:
                run_on(factory, partial(system.run, _case(workload, _WARMUP_TASKS)))

    samples: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for rep in range(reps):
        shift = rep % len(systems)
        order = systems[shift:] + systems[:shift]
        for loop_name, factory in loops.items():
            progress(f"throughput: repetition {rep + 1}/{reps} on {loop_name}")
            for workload in workloads:
                n = workload.n(quick)
                case = _case(workload, n)
                for system in order:
                    seconds = run_on(factory, partial(system.run, case))
                    samples[loop_name, workload.key, system.key].append(seconds / n * PER_TASK)

    rows: list[ThroughputRow] = []
    for loop_name in loops:
        for workload in workloads:
            n = workload.n(quick)
            for system in systems:
                values = samples[loop_name, workload.key, system.key]
                floor_values = samples[loop_name, workload.key, FLOOR_OF_STYLE[system.style]]
                floor = median(floor_values)
                us = median(values)
                rows.append(
                    ThroughputRow(
                        loop=loop_name,
                        workload=workload.key,
                        system=system.key,
                        label=system.label,
                        group=system.group,
                        style=system.style,
                        n=n,
                        concurrency=workload.concurrency,
                        submitters=submitters_for(workload.concurrency),
                        us_per_task=us,
                        us_min=min(values),
                        us_max=max(values),
                        tasks_per_s=PER_TASK / us,
                        ratio_to_floor=us / floor,
                        ratio_of_minima=min(values) / min(floor_values),
                        samples_us=values,
                    )
                )
    return rows
