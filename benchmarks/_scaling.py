"""Section 2: per-task cost as workers and queue depth grow, and loop lag under a flood."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from time import perf_counter
from typing import Any

from ._common import (
    PER_TASK,
    WORKERS,
    Case,
    GcClock,
    LoopFactory,
    Runner,
    median,
    percentile,
    progress,
    run_on,
    submitters_for,
    trivial,
)
from ._systems import (
    raw_closed,
    raw_gather,
    raw_pool,
    tasker,
    tasker_queue_task_closed,
    tasker_submit_gather,
)

__all__ = [
    "CurvePoint",
    "LagRow",
    "depth_reps",
    "run_depth_curve",
    "run_lag",
    "run_worker_curve",
]

HEARTBEAT = 0.001  # seconds between the heartbeat's wake-ups when nothing is in the way
_MIN_TIMED = 10_000  # tasks in a queued-curve measurement, in batches of the depth


@dataclass(frozen=True)
class CurvePoint:
    """The median per-task cost of one system at one point of a curve."""

    curve: str
    loop: str
    system: str
    floor: str  # the raw floor system its ratio is taken against
    x: int
    n: int
    reps: int
    us_per_task: float  # median
    us_min: float  # the fastest repetition
    ratio_to_floor: float
    gc_share: float  # of the run's time spent in the cyclic garbage collector (median)
    cpu_us_per_task: float  # the same on the process's CPU clock
    cpu_us_min: float
    samples_us: list[float]
    cpu_samples_us: list[float]


_WORKER_SYSTEMS: list[tuple[str, Runner, str]] = [
    ("tasker.queue_task.closed", tasker_queue_task_closed, "raw.closed"),
    ("tasker.submit.gather", tasker_submit_gather, "raw.gather"),
    ("raw.closed", raw_closed, "raw.closed"),
    ("raw.gather", raw_gather, "raw.gather"),
]
_DEPTH_SYSTEMS: list[tuple[str, Runner, str]] = [
    ("tasker.submit.gather", tasker_submit_gather, "raw.gather"),
    ("raw.gather", raw_gather, "raw.gather"),
]


def _curve(
    curve: str,
    loops: dict[str, LoopFactory],
    points: list[tuple[int, Case, int]],
    runners: list[tuple[str, Runner, str]],
) -> list[CurvePoint]:
    """Each point's systems interleaved ``reps`` times on every loop; ``points`` =
    (x, case, reps)."""
    samples: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    cpu_samples: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    gc_shares: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for loop_name, factory in loops.items():
        for x, case, reps in points:
            progress(f"{curve}: x={x:,} on {loop_name}, {case.tasks:,} tasks x {reps} repetitions")
            for _ in range(reps):
                for key, run, _floor in runners:
                    clock = GcClock()
                    timing = run_on(factory, partial(run, case), clock, collect=False)
                    samples[loop_name, x, key].append(timing.wall / case.tasks * PER_TASK)
                    cpu_samples[loop_name, x, key].append(timing.cpu / case.tasks * PER_TASK)
                    gc_shares[loop_name, x, key].append(min(clock.seconds / timing.wall, 1.0))
    result = []
    for loop_name in loops:
        for x, case, reps in points:
            for key, _run, floor in runners:
                values, cpu = samples[loop_name, x, key], cpu_samples[loop_name, x, key]
                us = median(values)
                result.append(
                    CurvePoint(
                        curve=curve,
                        loop=loop_name,
                        system=key,
                        floor=floor,
                        x=x,
                        n=case.tasks,
                        reps=reps,
                        us_per_task=us,
                        us_min=min(values),
                        ratio_to_floor=us / median(samples[loop_name, x, floor]),
                        gc_share=median(gc_shares[loop_name, x, key]),
                        cpu_us_per_task=median(cpu),
                        cpu_us_min=min(cpu),
                        samples_us=values,
                        cpu_samples_us=cpu,
                    )
                )
    return result


def run_worker_curve(
    loops: dict[str, LoopFactory], worker_counts: list[int], n: int, reps: int
) -> list[CurvePoint]:
    """Trivial tasks through 1..64 workers, both submission styles, 64 closed-loop callers."""
    points = [(w, Case(trivial, n, w, submitters_for(WORKERS)), reps) for w in worker_counts]
    return _curve("workers", loops, points, _WORKER_SYSTEMS)


def depth_reps(n: int, budget: int) -> int:
    """Repetitions of ``n`` tasks: ``budget`` tasks in all, between 1 and 15."""
    return max(1, min(15, budget // n))


def run_depth_curve(
    loops: dict[str, LoopFactory], depths: list[int], budget: int
) -> list[CurvePoint]:
    """``n`` trivial tasks submitted at once (so up to ``n`` queued) through 8 workers.

    Below ``_MIN_TIMED`` tasks a measurement submits and gathers ``n`` several times:
    1,000 trivial tasks take 3 ms, shorter than one time slice another process takes.
    """
    points = []
    for n in depths:
        batches = max(1, _MIN_TIMED // n)
        case = Case(trivial, n, WORKERS, submitters_for(WORKERS), batches)
        points.append((n, case, depth_reps(case.tasks, budget)))
    return _curve("queued", loops, points, _DEPTH_SYSTEMS)


# ------------------------------------------------------------------ loop lag


@dataclass(frozen=True)
class LagRow:
    """What a 1 ms heartbeat saw while ``n`` trivial tasks drained."""

    loop: str
    system: str
    n: int
    reps: int
    max_gap_ms: float  # median over repetitions of each drain's largest gap
    worst_gap_ms: float  # the largest gap of any repetition
    p99_gap_ms: float  # median over repetitions
    beats: float  # median number of heartbeats during a drain
    drain_ms: float


async def _heartbeat(stop: asyncio.Event, beats: list[float]) -> None:
    while not stop.is_set():
        await asyncio.sleep(HEARTBEAT)
        beats.append(perf_counter())


Flood = Callable[[int], Coroutine[Any, Any, tuple[list[float], float]]]


async def _watch(
    submit: Callable[[Callable[[object], Coroutine[Any, Any, int]]], asyncio.Future[int]],
    n: int,
) -> tuple[list[float], float]:
    """Submit ``n`` tasks, then drain them under a heartbeat: (gaps, drain seconds).

    The heartbeat's clock starts once everything is submitted and gathered, so the
    caller's own submission loop is not counted: only the drain can delay it.
    """
    stop = asyncio.Event()
    beats: list[float] = []
    everything = asyncio.gather(*[submit(trivial) for _ in range(n)])
    start = perf_counter()
    beats.append(start)
    beating = asyncio.create_task(_heartbeat(stop, beats))
    await everything
    drained = perf_counter() - start
    stop.set()
    await beating
    gaps = [later - earlier for earlier, later in pairwise(beats)]
    return gaps, drained


async def _tasker_flood(n: int) -> tuple[list[float], float]:
    async with tasker(WORKERS) as manager:
        return await _watch(manager.submit, n)


async def _raw_flood(n: int) -> tuple[list[float], float]:
    async with raw_pool(WORKERS) as pool:
        return await _watch(pool.submit, n)


_FLOODS: list[tuple[str, Flood]] = [
    ("tasker.submit", _tasker_flood),
    ("raw.submit", _raw_flood),
]


def run_lag(loops: dict[str, LoopFactory], n: int, reps: int) -> list[LagRow]:
    """Max and p99 heartbeat gap while a flood of ``n`` trivial tasks drains."""
    rows = []
    for loop_name, factory in loops.items():
        progress(f"lag: {n:,}-task flood on {loop_name}, {reps} repetitions")
        for key, flood in _FLOODS:
            maxima, p99s, counts, drains = [], [], [], []
            for _ in range(reps):
                gaps, drained = run_on(factory, partial(flood, n))
                maxima.append(max(gaps) * 1e3)
                p99s.append(percentile(gaps, 99) * 1e3)
                counts.append(float(len(gaps)))
                drains.append(drained * 1e3)
            rows.append(
                LagRow(
                    loop=loop_name,
                    system=key,
                    n=n,
                    reps=reps,
                    max_gap_ms=median(maxima),
                    worst_gap_ms=max(maxima),
                    p99_gap_ms=median(p99s),
                    beats=median(counts),
                    drain_ms=median(drains),
                )
            )
    return rows
