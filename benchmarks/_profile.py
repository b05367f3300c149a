"""Where tasker_aio's per-task time goes: cProfile over the trivial workload.

Profiling inflates every call, so the absolute numbers are larger than in the other
sections; compare them with each other and with the raw floor profiled the same way.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tasker_aio

from ._common import (
    PER_TASK,
    Case,
    LoopFactory,
    TaskFn,
    progress,
    run_on,
    settle_gc,
    sleep_1ms,
    trivial,
)
from ._systems import closed_loop, raw_pool, tasker

__all__ = ["ProfileEntry", "ProfileResult", "run_profile"]

_PACKAGE = str(Path(tasker_aio.__file__).resolve().parent)
_TOP = 12

# A pstats key: (file name, line number, function name); '~' is the file of built-ins.
Key = tuple[str, int, str]
Edge = tuple[int, int, float, float]  # calls, primitive calls, own time, cumulative time


@dataclass(frozen=True)
class ProfileEntry:
    function: str
    calls_per_task: float
    own_us_per_task: float  # time in the function itself (tottime) per task
    cumulative_us_per_task: float


@dataclass(frozen=True)
class ProfileResult:
    scenario: str
    n: int
    total_us_per_task: float  # everything the profiler saw, per task
    raw_floor_us_per_task: float  # the raw floor of the same style, profiled alike
    tasker_own_us_per_task: float  # tottime of every tasker_aio function
    direct_callee_us_per_task: float  # C and library calls made by tasker_aio code
    tasker_functions: list[ProfileEntry]  # tasker_aio functions by own time
    callees: list[ProfileEntry]  # what tasker_aio calls directly, by time spent there


def _in_package(key: Key) -> bool:
    return key[0].startswith(_PACKAGE)


def _name(key: Key) -> str:
    filename, line, function = key
    if filename == "~":
        return function
    if filename.startswith(_PACKAGE):
        return f"tasker_aio/{Path(filename).relative_to(_PACKAGE).as_posix()}:{line} {function}"
    return f"{Path(filename).name}:{line} {function}"


Stats = dict[Key, tuple[int, int, float, float, dict[Key, Edge]]]
"""pstats' table: key -> (primitive calls, calls, own time, cumulative time, callers)."""


def _stats_of(profiler: cProfile.Profile) -> Stats:
    stats: Stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return stats


async def _tasker_gather(profiler: cProfile.Profile, case: Case) -> None:
    async with tasker(case.concurrency) as manager:
        submit, fn = manager.submit, case.fn
        settle_gc()  # as stopwatch() does: the same collector state for every system
        profiler.enable()
        await asyncio.gather(*[submit(fn) for _ in range(case.n)])
        profiler.disable()


async def _tasker_closed(profiler: cProfile.Profile, case: Case) -> None:
    async with tasker(case.concurrency) as manager:
        settle_gc()  # as stopwatch() does: the same collector state for every system
        profiler.enable()
        await closed_loop(manager.queue_task, case.fn, case.n, case.submitters)
        profiler.disable()


async def _raw_gather(profiler: cProfile.Profile, case: Case) -> None:
    async with raw_pool(case.concurrency) as pool:
        submit, fn = pool.submit, case.fn
        settle_gc()  # as stopwatch() does: the same collector state for every system
        profiler.enable()
        await asyncio.gather(*[submit(fn) for _ in range(case.n)])
        profiler.disable()


async def _raw_closed(profiler: cProfile.Profile, case: Case) -> None:
    async with raw_pool(case.concurrency) as pool:
        settle_gc()  # as stopwatch() does: the same collector state for every system
        profiler.enable()
        await closed_loop(pool.submit, case.fn, case.n, case.submitters)
        profiler.disable()


Body = Callable[[cProfile.Profile, Case], Coroutine[Any, Any, None]]

_SCENARIOS: list[tuple[str, Body, Body, TaskFn, int, int]] = [
    # name, tasker body, its raw floor, task, workers, closed-loop callers
    ("tasker submit + gather (trivial, 8 workers)", _tasker_gather, _raw_gather, trivial, 8, 64),
    (
        "tasker queue_task, 64 closed-loop callers (trivial, 8 workers)",
        _tasker_closed,
        _raw_closed,
        trivial,
        8,
        64,
    ),
    (
        "tasker queue_task, 1,000 closed-loop callers (1 ms I/O, 1,000 workers)",
        _tasker_closed,
        _raw_closed,
        sleep_1ms,
        1000,
        1000,
    ),
]


def _run(factory: LoopFactory, body: Body, case: Case) -> Stats:
    profiler = cProfile.Profile()
    run_on(factory, lambda: body(profiler, case))
    return _stats_of(profiler)


def _total(stats: Stats) -> float:
    return sum(entry[2] for entry in stats.values())


def run_profile(factory: LoopFactory, n: int) -> list[ProfileResult]:
    """Profile each tasker scenario and its raw floor; name the top per-task costs."""
    results = []
    for scenario, body, floor_body, fn, workers, submitters in _SCENARIOS:
        progress(f"profile: {scenario}, {n:,} tasks")
        case = Case(fn, n, workers, submitters)
        stats = _run(factory, body, case)
        floor = _run(factory, floor_body, case)
        own = [
            ProfileEntry(_name(key), nc / n, tt / n * PER_TASK, ct / n * PER_TASK)
            for key, (_cc, nc, tt, ct, _callers) in stats.items()
            if _in_package(key)
        ]
        callees = []
        for key, (_cc, _nc, _tt, _ct, callers) in stats.items():
            if _in_package(key):
                continue
            edges = [edge for caller, edge in callers.items() if _in_package(caller)]
            if edges:
                calls = sum(edge[0] for edge in edges)
                own_time = sum(edge[2] for edge in edges)
                cumulative = sum(edge[3] for edge in edges)
                callees.append(
                    ProfileEntry(
                        _name(key), calls / n, own_time / n * PER_TASK, cumulative / n * PER_TASK
                    )
                )
        own.sort(key=lambda entry: entry.own_us_per_task, reverse=True)
        callees.sort(key=lambda entry: entry.cumulative_us_per_task, reverse=True)
        results.append(
            ProfileResult(
                scenario=scenario,
                n=n,
                total_us_per_task=_total(stats) / n * PER_TASK,
                raw_floor_us_per_task=_total(floor) / n * PER_TASK,
                tasker_own_us_per_task=sum(e.own_us_per_task for e in own),
                direct_callee_us_per_task=sum(e.own_us_per_task for e in callees),
                tasker_functions=own[:_TOP],
                callees=callees[:_TOP],
            )
        )
    return results
