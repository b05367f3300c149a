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

from ._common import PER_TASK, WORKERS, LoopFactory, progress, run_on, submitters_for, trivial
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
        return f"tasker_aio/{Path(filename).name}:{line} {function}"
    return f"{Path(filename).name}:{line} {function}"


Stats = dict[Key, tuple[int, int, float, float, dict[Key, Edge]]]
"""pstats' table: key -> (primitive calls, calls, own time, cumulative time, callers)."""


def _stats_of(profiler: cProfile.Profile) -> Stats:
    stats: Stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return stats


async def _tasker_gather(profiler: cProfile.Profile, n: int) -> None:
    async with tasker(WORKERS) as manager:
        submit = manager.submit
        profiler.enable()
        await asyncio.gather(*[submit(trivial) for _ in range(n)])
        profiler.disable()


async def _tasker_closed(profiler: cProfile.Profile, n: int) -> None:
    async with tasker(WORKERS) as manager:
        profiler.enable()
        await closed_loop(manager.queue_task, trivial, n, submitters_for(WORKERS))
        profiler.disable()


async def _raw_gather(profiler: cProfile.Profile, n: int) -> None:
    async with raw_pool(WORKERS) as pool:
        submit = pool.submit
        profiler.enable()
        await asyncio.gather(*[submit(trivial) for _ in range(n)])
        profiler.disable()


async def _raw_closed(profiler: cProfile.Profile, n: int) -> None:
    async with raw_pool(WORKERS) as pool:
        profiler.enable()
        await closed_loop(pool.submit, trivial, n, submitters_for(WORKERS))
        profiler.disable()


Body = Callable[[cProfile.Profile, int], Coroutine[Any, Any, None]]

_SCENARIOS: list[tuple[str, Body, Body]] = [
    ("tasker submit + gather (trivial)", _tasker_gather, _raw_gather),
    ("tasker queue_task, 64 closed-loop callers (trivial)", _tasker_closed, _raw_closed),
]


def _run(factory: LoopFactory, body: Body, n: int) -> Stats:
    profiler = cProfile.Profile()
    run_on(factory, lambda: body(profiler, n))
    return _stats_of(profiler)


def _total(stats: Stats) -> float:
    return sum(entry[2] for entry in stats.values())


def run_profile(factory: LoopFactory, n: int) -> list[ProfileResult]:
    """Profile each tasker scenario and its raw floor; name the top per-task costs."""
    results = []
    for scenario, body, floor_body in _SCENARIOS:
        progress(f"profile: {scenario}, {n:,} tasks")
        stats = _run(factory, body, n)
        floor = _run(factory, floor_body, n)
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
