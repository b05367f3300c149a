"""Section 1: the same workloads through every system, interleaved, on every loop."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial

from ._common import PER_TASK, Case, LoopFactory, Workload, median, progress, run_on
from ._systems import System

__all__ = ["FLOOR_OF_STYLE", "ThroughputRow", "run_throughput"]

FLOOR_OF_STYLE = {"closed": "raw.closed", "gather": "raw.gather"}
_WARMUP_TASKS = 500


@dataclass(frozen=True)
class ThroughputRow:
    """The median of one system on one workload and loop, against its raw floor."""

    loop: str
    workload: str  # Workload.key: body@concurrency
    body: str
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
    cpu_us_per_task: float  # the process's CPU time, median
    cpu_us_min: float
    cpu_ratio_to_floor: float  # median CPU time over the floor's
    cpu_ratio_of_minima: float
    samples_us: list[float]
    cpu_samples_us: list[float]


def _case(workload: Workload, n: int) -> Case:
    return Case(workload.fn, n, workload.concurrency, workload.callers)


def _fails(system: System, notes: list[str], exc: Exception) -> None:
    """A peer that fails is noted and dropped; a failure of tasker or the floor is a bug."""
    if system.group not in ("peer", "reference"):
        raise exc
    notes.append(f"{system.label} skipped: it failed with {exc!r}")


def _warm_up(
    loops: dict[str, LoopFactory],
    workloads: list[Workload],
    systems: list[System],
    notes: list[str],
) -> list[System]:
    """One untimed pass per system, loop and task body; the systems that came through.

    Imports, the interpreter's specialised bytecode and the allocator's pools are warm
    before the first timed run.
    """
    probes = {w.body: w for w in workloads}.values()  # one workload per body is enough
    working = []
    for system in systems:
        try:
            for factory in loops.values():
                for workload in probes:
                    case = _case(workload, system.tasks(_WARMUP_TASKS))
                    run_on(factory, partial(system.run, case), collect=False)
        except Exception as exc:
            _fails(system, notes, exc)
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

    A peer that fails (in the warm-up, or in a timed run) is noted in ``notes`` and left
    out; a system that runs a share of the tasks (``System.share``) is noted once.

    Each repetition runs every combination once, in an order rotated by one system per
    repetition, each on a fresh event loop; so drift and noise on this machine spread
    over all systems instead of landing on one.
    """
    if warmup:
        progress("throughput: warm-up")
        systems = _warm_up(loops, workloads, systems, notes)
    for system in systems:
        if system.share != 1.0:
            notes.append(
                f"{system.label} ({system.style}) runs {system.share:.0%} of each workload's"
                " tasks: it is slow, and the full run keeps near 5 minutes"
            )

    samples: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    cpu_samples: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for rep in range(reps):
        shift = rep % len(systems)
        order = systems[shift:] + systems[:shift]
        for loop_name, factory in loops.items():
            progress(f"throughput: repetition {rep + 1}/{reps} on {loop_name}")
            for workload in workloads:
                for system in order:
                    if system not in systems:
                        continue  # failed earlier
                    n = system.tasks(workload.n(quick))
                    try:
                        timing = run_on(
                            factory, partial(system.run, _case(workload, n)), collect=False
                        )
                    except Exception as exc:
                        _fails(system, notes, exc)
                        systems = [s for s in systems if s is not system]
                        continue
                    key = loop_name, workload.key, system.key
                    samples[key].append(timing.wall / n * PER_TASK)
                    cpu_samples[key].append(timing.cpu / n * PER_TASK)

    rows: list[ThroughputRow] = []
    for loop_name in loops:
        for workload in workloads:
            for system in systems:
                n = system.tasks(workload.n(quick))
                key = loop_name, workload.key, system.key
                floor_key = loop_name, workload.key, FLOOR_OF_STYLE[system.style]
                values, floor_values = samples[key], samples[floor_key]
                floor = median(floor_values)
                us = median(values)
                cpu, floor_cpu = cpu_samples[key], cpu_samples[floor_key]
                rows.append(
                    ThroughputRow(
                        loop=loop_name,
                        workload=workload.key,
                        body=workload.body,
                        system=system.key,
                        label=system.label,
                        group=system.group,
                        style=system.style,
                        n=n,
                        concurrency=workload.concurrency,
                        submitters=workload.callers,
                        us_per_task=us,
                        us_min=min(values),
                        us_max=max(values),
                        tasks_per_s=PER_TASK / us,
                        ratio_to_floor=us / floor,
                        ratio_of_minima=min(values) / min(floor_values),
                        cpu_us_per_task=median(cpu),
                        cpu_us_min=min(cpu),
                        cpu_ratio_to_floor=median(cpu) / median(floor_cpu),
                        cpu_ratio_of_minima=min(cpu) / min(floor_cpu),
                        samples_us=values,
                        cpu_samples_us=cpu_samples[key],
                    )
                )
    return rows
