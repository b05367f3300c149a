"""What every section shares: workloads, cases, event loops, timing and statistics."""

from __future__ import annotations

import asyncio
import gc
import importlib
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple, TypeVar

__all__ = [
    "BODIES",
    "CONCURRENCIES",
    "PER_TASK",
    "WORKERS",
    "Case",
    "GcClock",
    "LoopFactory",
    "Runner",
    "Style",
    "TaskFn",
    "Timing",
    "Workload",
    "callers_for",
    "loop_factories",
    "median",
    "percentile",
    "progress",
    "run_on",
    "settle_gc",
    "short_count",
    "sleep_1ms",
    "split",
    "stopwatch",
    "submitters_for",
    "trivial",
    "workloads",
    "yield_once",
]

T = TypeVar("T")

WORKERS = 8  # workers / concurrency limit / resources for the 8-wide workloads
CLOSED_LOOP_SUBMITTERS = 64
PER_TASK = 1e6  # seconds per task -> microseconds per task

TaskFn = Callable[[Any], Awaitable[int]]
"""A task: ``fn(resource)`` returning an awaitable; peers pass ``None`` as resource."""

Style = Literal["closed", "gather"]
"""How callers submit: ``closed`` = a fixed set of callers each awaiting its own result
before submitting the next; ``gather`` = submit everything, then wait for all."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


# ------------------------------------------------------------------ workloads


async def trivial(_resource: object) -> int:
    """The smallest task: returns at once, never suspends."""
    return 1


async def yield_once(_resource: object) -> int:
    """Suspends once, so every task goes through the loop's ready queue."""
    await asyncio.sleep(0)
    return 1


async def sleep_1ms(_resource: object) -> int:
    """Waits 1 ms on a timer: an I/O-bound task."""
    await asyncio.sleep(0.001)
    return 1


BODIES: dict[str, tuple[str, TaskFn]] = {
    # key: (label, task body)
    "trivial": ("trivial task (return 1)", trivial),
    "sleep0": ("one await asyncio.sleep(0)", yield_once),
    "io1ms": ("1 ms I/O (await asyncio.sleep(0.001))", sleep_1ms),
}
CONCURRENCIES = (8, 64, 1000)


@dataclass(frozen=True)
class Workload:
    """One task body at one concurrency: how many tasks, how wide, how many callers."""

    body: str  # a key of BODIES
    concurrency: int  # workers / concurrency limit
    callers: int  # closed-loop callers, each awaiting its result before the next
    n_full: int
    n_quick: int

    @property
    def key(self) -> str:
        return f"{self.body}@{self.concurrency}"

    @property
    def label(self) -> str:
        return BODIES[self.body][0]

    @property
    def fn(self) -> TaskFn:
        return BODIES[self.body][1]

    def n(self, quick: bool) -> int:
        return self.n_quick if quick else self.n_full


# Tasks per measurement (full, quick). The 1 ms task costs at least 1 ms / concurrency
# of wall time each, so the narrow I/O workloads need far fewer tasks for the same time.
_SIZES: dict[str, tuple[int, int]] = {
    "trivial@8": (10_000, 1_000),
    "trivial@64": (10_000, 1_000),
    "trivial@1000": (10_000, 2_000),
    "sleep0@8": (10_000, 1_000),
    "sleep0@64": (10_000, 1_000),
    "sleep0@1000": (10_000, 2_000),
    "io1ms@8": (800, 200),
    "io1ms@64": (4_000, 1_000),
    "io1ms@1000": (10_000, 2_000),
}


def workloads() -> list[Workload]:
    """Every task body at every concurrency, in table order."""
    found = []
    for body in BODIES:
        for concurrency in CONCURRENCIES:
            workload = Workload(body, concurrency, callers_for(body, concurrency), 0, 0)
            n_full, n_quick = _SIZES[workload.key]
            found.append(replace(workload, n_full=n_full, n_quick=n_quick))
    return found


def callers_for(body: str, concurrency: int) -> int:
    """Closed-loop callers: as many as workers for I/O (each worker has a caller to
    serve); for CPU-bound bodies 64 or the concurrency when wider, so a wake-up and a
    queued task are always in flight and the callers never cap the workers."""
    if body == "io1ms":
        return concurrency
    return max(CLOSED_LOOP_SUBMITTERS, concurrency)


def submitters_for(concurrency: int) -> int:
    """Closed-loop callers for the trivial body at ``concurrency`` (the curves use it)."""
    return callers_for("trivial", concurrency)


@dataclass(frozen=True)
class Case:
    """One measurement: run ``n`` tasks of ``fn`` with ``concurrency`` workers/limit.

    ``batches``: the submit-all runners (raw_gather, tasker_submit_gather) submit and
    gather ``n`` tasks that many times in one timed part, so a shallow queue still
    gets a timed part long enough to outlast a scheduler hiccup; the others ignore it.
    """

    fn: TaskFn
    n: int
    concurrency: int
    submitters: int
    batches: int = 1

    @property
    def tasks(self) -> int:
        """Tasks in the timed part: ``n`` for one batch."""
        return self.n * self.batches


class Timing(NamedTuple):
    """Seconds a timed part took: on the wall clock, and on this process's CPU clock.

    Wall time is what a caller waits; CPU time leaves out the time other processes
    took the CPU away, so on a shared machine it is the steadier of the two (it also
    leaves out time the loop sat idle waiting for timers).
    """

    wall: float
    cpu: float


def settle_gc() -> None:
    """A full collection that GcClock leaves out: before a measured part, after setup."""
    GcClock.paused = True
    try:
        gc.collect()
    finally:
        GcClock.paused = False


def stopwatch() -> Callable[[], Timing]:
    """Collect garbage, start both clocks; the returned function reads how long since.

    Every system's setup is done by now. The full collection frees what it left and
    zeroes the collector's counters, so every timed part starts from the same state:
    otherwise a setup that allocates more (a thousand workers) brings a full
    collection of the whole heap, tens of milliseconds, into the timed part.
    """
    settle_gc()
    wall, cpu = time.perf_counter(), time.process_time()

    def stop() -> Timing:
        return Timing(time.perf_counter() - wall, time.process_time() - cpu)

    return stop


Runner = Callable[[Case], Coroutine[Any, Any, Timing]]
"""Runs a case and returns how long its timed part took (setup and teardown excluded)."""


def short_count(x: int) -> str:
    """1000 -> 1k, 1000000 -> 1M; other numbers as they are."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if x >= size and x % size == 0:
            return f"{x // size}{suffix}"
    return str(x)


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as possible (sums to ``total``)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# ---------------------------------------------------------------- event loops


def loop_factories(notes: list[str], use_uvloop: bool = True) -> dict[str, LoopFactory]:
    """The default asyncio loop, and uvloop when it can be imported."""
    loops: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
    if not use_uvloop:
        return loops
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        notes.append("uvloop is not installed (pip install uvloop): default loop only")
    else:
        factory: LoopFactory = uvloop.new_event_loop
        loops["uvloop"] = factory
    return loops


def run_on(
    factory: LoopFactory,
    main: Callable[[], Coroutine[Any, Any, T]],
    gc_clock: GcClock | None = None,
    collect: bool = True,
) -> T:
    """Run ``main()`` on a fresh loop from ``factory``, after a full garbage collection
    unless ``collect`` is false (a Runner's stopwatch() collects after its setup).

    ``gc_clock``, if given, times the collector's passes during the run (not the
    collections before it or in stopwatch()).
    """
    if collect:
        gc.collect()
    with asyncio.Runner(loop_factory=factory) as runner:
        if gc_clock is None:
            return runner.run(main())
        with gc_clock:
            return runner.run(main())


class GcClock:
    """Adds up the time the cyclic garbage collector runs while it is entered."""

    paused = False  # while stopwatch() collects on purpose: not the run's own passes

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if GcClock.paused:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)


# ----------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


_START = time.perf_counter()


def progress(message: str) -> None:
    """A progress line on stderr, so stdout carries only the tables."""
    print(f"[{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)
