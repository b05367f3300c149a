"""Peak memory per queued-but-not-started task, measured with tracemalloc.

Every worker is first blocked on a gate, so the measured tasks all sit in the queue;
then ``n`` tasks are submitted with tracing on, and the peak traced memory is divided
by ``n``. The list holding the futures (8 bytes a task) is counted for every system.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from ._common import WORKERS, LoopFactory, median, progress, run_on, trivial
from ._systems import raw_pool, tasker

__all__ = ["MemoryRow", "run_memory"]

Measure = Callable[[int], Coroutine[Any, Any, tuple[int, int]]]


@dataclass(frozen=True)
class MemoryRow:
    system: str
    label: str
    n: int
    peak_bytes_per_task: float
    retained_bytes_per_task: float
    ratio_to_floor: float


class _Trace:
    """Traced (retained, peak) bytes allocated inside the ``with`` block."""

    def __init__(self) -> None:
        self.retained = 0
        self.peak = 0

    def __enter__(self) -> _Trace:
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.retained = current - self._base
        self.peak = peak - self._base


async def _settle(done: Callable[[], bool]) -> None:
    """Let the loop run until ``done()``; a bounded number of steps."""
    for _ in range(1_000):
        if done():
            return
        await asyncio.sleep(0)
    raise RuntimeError("the system under test did not settle")


def _gate() -> tuple[asyncio.Event, Callable[[object], Coroutine[Any, Any, int]]]:
    gate = asyncio.Event()

    async def blocker(_resource: object) -> int:
        await gate.wait()
        return 0

    return gate, blocker


async def _tasker_submit(n: int) -> tuple[int, int]:
    gate, blocker = _gate()
    async with tasker(WORKERS) as manager:
        blocked = [manager.submit(blocker) for _ in range(WORKERS)]
        await _settle(lambda: manager.stats().running_tasks == WORKERS)
        with _Trace() as trace:
            submit = manager.submit
            futures = [submit(trivial) for _ in range(n)]
        gate.set()
        await asyncio.gather(*blocked, *futures)
    return trace.peak, trace.retained


async def _tasker_queue_task(n: int) -> tuple[int, int]:
    gate, blocker = _gate()
    async with tasker(WORKERS) as manager:
        blocked = [manager.submit(blocker) for _ in range(WORKERS)]
        await _settle(lambda: manager.stats().running_tasks == WORKERS)
        with _Trace() as trace:
            queue_task = manager.queue_task
            tasks = [asyncio.create_task(queue_task(trivial)) for _ in range(n)]
            await _settle(lambda: manager.stats().queued_tasks == n)  # each reaches its await
        gate.set()
        await asyncio.gather(*blocked, *tasks)
    return trace.peak, trace.retained


async def _raw(n: int) -> tuple[int, int]:
    gate, blocker = _gate()
    async with raw_pool(WORKERS) as pool:
        blocked = [pool.submit(blocker) for _ in range(WORKERS)]
        await _settle(lambda: pool.pending() == 0)
        with _Trace() as trace:
            submit = pool.submit
            futures = [submit(trivial) for _ in range(n)]
        gate.set()
        await asyncio.gather(*blocked, *futures)
    return trace.peak, trace.retained


async def _semaphore(n: int) -> tuple[int, int]:
    semaphore = asyncio.Semaphore(WORKERS)
    gate, blocker = _gate()

    async def one(fn: Callable[[object], Coroutine[Any, Any, int]]) -> int:
        async with semaphore:
            return await fn(None)

    blocked = [asyncio.create_task(one(blocker)) for _ in range(WORKERS)]
    await _settle(semaphore.locked)
    with _Trace() as trace:
        tasks = [asyncio.create_task(one(trivial)) for _ in range(n)]
        await asyncio.sleep(0)  # each task reaches the semaphore and waits there
    gate.set()
    await asyncio.gather(*blocked, *tasks)
    return trace.peak, trace.retained


_SYSTEMS: list[tuple[str, str, Measure]] = [
    ("tasker.submit", "tasker submit (future)", _tasker_submit),
    ("tasker.queue_task", "tasker queue_task in a task each", _tasker_queue_task),
    ("raw.submit", "raw floor (fn, future) on asyncio.Queue", _raw),
    ("peer.semaphore", "create_task + Semaphore", _semaphore),
]
_FLOOR = "raw.submit"


def run_memory(factory: LoopFactory, n: int, reps: int) -> list[MemoryRow]:
    """Bytes per queued task for each system: the median of ``reps`` measurements."""
    peaks: dict[str, list[float]] = {key: [] for key, _, _ in _SYSTEMS}
    retained: dict[str, list[float]] = {key: [] for key, _, _ in _SYSTEMS}
    for rep in range(reps):
        progress(f"memory: repetition {rep + 1}/{reps}, {n:,} queued tasks")
        for key, _, measure in _SYSTEMS:
            peak, kept = run_on(factory, partial(measure, n))
            peaks[key].append(peak / n)
            retained[key].append(kept / n)
    floor = median(peaks[_FLOOR])
    return [
        MemoryRow(
            system=key,
            label=label,
            n=n,
            peak_bytes_per_task=median(peaks[key]),
            retained_bytes_per_task=median(retained[key]),
            ratio_to_floor=median(peaks[key]) / floor,
        )
        for key, label, _ in _SYSTEMS
    ]
