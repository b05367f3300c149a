"""The demo's simulated workload: a real TaskManager under a load step, seen through its
stats() and metrics()."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import (
    Config,
    ManagerStoppedError,
    MaxRetriesExceededError,
    TaskManager,
    TaskMetrics,
    TaskStats,
    new_collector,
)


@dataclass(frozen=True, kw_only=True)
class DemoParams:
    """What the simulated workload looks like.

    The load is a step: ``rate`` arrivals/s for the first 35% of ``duration``,
    ``burst_rate`` until 65%, then ``rate`` again. Arrivals are Poisson; execution
    times are log-normal around ``median_latency``.
    """

    duration: float = 12.0
    rate: float = 15.0
    burst_rate: float = 80.0
    workers: int = 2
    max_workers: int = 8
    failure_rate: float = 0.02
    seed: int | None = None
    create_cost: float = 0.05  # seconds to "load a model"
    median_latency: float = 0.06
    latency_spread: float = 0.5  # sigma of the log-normal
    priority_fraction: float = 0.1
    max_retries: int = 2


@dataclass(frozen=True)
class Sample:
    """One look at the manager: the simulation's phase plus ``stats()`` and ``metrics()``."""

    elapsed: float
    phase: str
    target_rate: float
    stats: TaskStats
    metrics: TaskMetrics


@dataclass(frozen=True)
class Summary:
    """The outcome of :func:`simulate`."""

    params: DemoParams
    elapsed: float
    metrics: TaskMetrics
    priority_submitted: int
    worker_history: tuple[int, ...]
    peak_workers: int
    peak_throughput: float
    models_loaded: int
    models_unloaded: int
    crashes: int
    errors: tuple[str, ...]


class ModelCrashed(RuntimeError):
    """The simulated model handle broke; ``check_health`` declares it unhealthy."""


class _Model:
    """A fake model handle."""

    def __init__(self, ident: int) -> None:
        self.ident = ident


class _QuietLogger:
    """Keeps the manager's log off the screen; remembers errors for the summary."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str, *args: Any) -> None:
        """Drop."""

    def info(self, msg: str, *args: Any) -> None:
        """Drop."""

    def warning(self, msg: str, *args: Any) -> None:
        """Drop (worker replacements are expected here)."""

    def error(self, msg: str, *args: Any) -> None:
        """Remember."""
        self.errors.append(msg % args if args else msg)


_PHASES = (("warm-up", 0.35), ("burst", 0.65), ("cool-down", 1.0))  # name, end / duration


def phase_at(params: DemoParams, t: float) -> tuple[str, float]:
    """The load phase and its arrival rate at ``t`` seconds into the run."""
    for name, end in _PHASES:
        if t < end * params.duration:
            return name, params.burst_rate if name == "burst" else params.rate
    return "draining", 0.0


async def simulate(
    params: DemoParams,
    on_sample: Callable[[Sample], object] | None = None,
    *,
    sample_interval: float = 0.2,
) -> Summary:
    """Run the simulated workload on a real TaskManager and return what happened.

    Args:
        params: the workload.
        on_sample: called about every ``sample_interval`` seconds, and once at the end.
        sample_interval: seconds between samples.

    Returns:
        Totals, peaks and the final metrics.
    """
    arrival_rng = random.Random(params.seed)
    work_rng = random.Random(None if params.seed is None else params.seed + 1)
    counts = {"loaded": 0, "unloaded": 0, "crashes": 0, "priority": 0}
    logger = _QuietLogger()

    async def load_model() -> _Model:
        await asyncio.sleep(params.create_cost)
        counts["loaded"] += 1
        return _Model(counts["loaded"])

    def unload_model(model: _Model) -> None:
        counts["unloaded"] += 1

    async def infer(model: _Model) -> int:
        await asyncio.sleep(
            work_rng.lognormvariate(math.log(params.median_latency), params.latency_spread)
        )
        if work_rng.random() < params.failure_rate:
            counts["crashes"] += 1
            raise ModelCrashed(f"model #{model.ident} crashed")
        return model.ident

    config = Config[_Model](
        on_create=load_model,
        on_destroy=unload_model,
        worker_count=params.workers,
        max_worker_count=params.max_workers,
        resource_pool_size=0,
        check_health=lambda exc: not isinstance(exc, ModelCrashed),
        max_retries=params.max_retries,
        logger=logger,
        collector=new_collector(window=2.0),
    )
    started = time.monotonic()
    finished = False
    history: list[int] = []
    peak_throughput = 0.0

    def elapsed() -> float:
        return time.monotonic() - started

    async def request(manager: TaskManager[_Model, int], priority: bool) -> None:
        submit = manager.queue_task_with_priority if priority else manager.queue_task
        try:
            await submit(infer)
        except (MaxRetriesExceededError, ManagerStoppedError):
            pass  # counted by metrics(); a real app would answer with an error

    async def arrivals(manager: TaskManager[_Model, int], tg: asyncio.TaskGroup) -> None:
        due = 0.0  # when the next request arrives (Poisson: exponential gaps)
        while True:
            rate = phase_at(params, due)[1]
            if rate > 0:
                due += arrival_rng.expovariate(rate)
            else:  # a silent phase: wait for its end
                due = min(
                    end * params.duration for _, end in _PHASES if end * params.duration > due
                )
            if due >= params.duration:
                break
            await asyncio.sleep(max(0.0, due - elapsed()))
            if rate > 0:
                priority = arrival_rng.random() < params.priority_fraction
                counts["priority"] += priority
                tg.create_task(request(manager, priority))
        await asyncio.sleep(max(0.0, params.duration - elapsed()))

    def sample(manager: TaskManager[_Model, int]) -> None:
        nonlocal peak_throughput
        stats, metrics = manager.stats(), manager.metrics()
        history.append(stats.active_workers)
        peak_throughput = max(peak_throughput, metrics.task_completion_rate)
        if on_sample is not None:
            t = elapsed()
            phase, rate = ("done", 0.0) if finished else phase_at(params, t)
            on_sample(Sample(t, phase, rate, stats, metrics))

    async def sampler(manager: TaskManager[_Model, int]) -> None:
        while True:
            sample(manager)
            await asyncio.sleep(sample_interval)

    async with TaskManager[_Model, int](config) as manager:
        started = time.monotonic()
        watcher = asyncio.create_task(sampler(manager))
        try:
            async with asyncio.TaskGroup() as tg:
                await arrivals(manager, tg)
        finally:
            watcher.cancel()
        finished = True  # every request has its answer
        sample(manager)
        await manager.stop()  # graceful; the context manager would do it too
    return Summary(
        params=params,
        elapsed=elapsed(),
        metrics=manager.metrics(),
        priority_submitted=counts["priority"],
        worker_history=tuple(history),
        peak_workers=max(history),
        peak_throughput=peak_throughput,
        models_loaded=counts["loaded"],
        models_unloaded=counts["unloaded"],
        crashes=counts["crashes"],
        errors=tuple(logger.errors),
    )


# ---------------------------------------------------------------------------- drawing
