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
    interrupted: bool = False  # the run was cut short (Ctrl-C): totals so far


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


class Simulation:
    """The simulated workload on a real TaskManager; :meth:`summary` works at any time.

    :meth:`run` drives the load; if it is interrupted (Ctrl-C cancels it), the manager
    is killed on the way out and :meth:`summary` still tells what ran so far.
    """

    def __init__(
        self,
        params: DemoParams,
        on_sample: Callable[[Sample], object] | None = None,
        *,
        sample_interval: float = 0.2,
    ) -> None:
        """Prepare a run of ``params``; ``on_sample`` sees a :class:`Sample` now and then.

        Args:
            params: the workload.
            on_sample: called about every ``sample_interval`` seconds, and once at the end.
            sample_interval: seconds between samples.
        """
        self.params = params
        self.on_sample = on_sample
        self.sample_interval = sample_interval
        self.manager: TaskManager[_Model, int] | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self.finished = False  # every request has its answer
        self.history: list[int] = []
        self.peak_throughput = 0.0
        self.counts = {"loaded": 0, "unloaded": 0, "crashes": 0, "priority": 0}
        self.logger = _QuietLogger()
        self._arrival_rng = random.Random(params.seed)
        self._work_rng = random.Random(None if params.seed is None else params.seed + 1)

    def elapsed(self) -> float:
        """Seconds since the manager started (0 before), up to the end of the run."""
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started

    def summary(self, *, interrupted: bool = False) -> Summary:
        """What happened: the whole run once :meth:`run` returned, else what ran so far."""
        manager = self.manager
        return Summary(
            params=self.params,
            elapsed=self.elapsed(),
            metrics=manager.metrics() if manager is not None else TaskMetrics(),
            priority_submitted=self.counts["priority"],
            worker_history=tuple(self.history),
            peak_workers=max(self.history, default=0),
            peak_throughput=self.peak_throughput,
            models_loaded=self.counts["loaded"],
            models_unloaded=self.counts["unloaded"],
            crashes=self.counts["crashes"],
            errors=tuple(self.logger.errors),
            interrupted=interrupted,
        )

    async def run(self) -> Summary:
        """Run the workload, stop the manager gracefully, and return the summary."""
        params = self.params
        config = Config[_Model](
            on_create=self._load_model,
            on_destroy=self._unload_model,
            worker_count=params.workers,
            max_worker_count=params.max_workers,
            resource_pool_size=0,
            check_health=lambda exc: not isinstance(exc, ModelCrashed),
            max_retries=params.max_retries,
            logger=self.logger,
            collector=new_collector(window=2.0),
        )
        try:
            async with TaskManager[_Model, int](config) as manager:
                self.manager = manager
                self.started = time.monotonic()
                watcher = asyncio.create_task(self._sampler(manager))
                try:
                    async with asyncio.TaskGroup() as tg:
                        await self._arrivals(manager, tg)
                finally:
                    watcher.cancel()
                self.finished = True
                self._sample(manager)
                await manager.stop()  # graceful; the context manager would do it too
        finally:  # also when cancelled: `async with` has killed the manager by now
            self.ended = time.monotonic()
        return self.summary()

    async def _load_model(self) -> _Model:
        await asyncio.sleep(self.params.create_cost)
        self.counts["loaded"] += 1
        return _Model(self.counts["loaded"])

    def _unload_model(self, model: _Model) -> None:
        self.counts["unloaded"] += 1

    async def _infer(self, model: _Model) -> int:
        params, rng = self.params, self._work_rng
        await asyncio.sleep(
            rng.lognormvariate(math.log(params.median_latency), params.latency_spread)
        )
        if rng.random() < params.failure_rate:
            self.counts["crashes"] += 1
            raise ModelCrashed(f"model #{model.ident} crashed")
        return model.ident

    async def _request(self, manager: TaskManager[_Model, int], priority: bool) -> None:
        submit = manager.queue_task_with_priority if priority else manager.queue_task
        try:
            await submit(self._infer)
        except (MaxRetriesExceededError, ManagerStoppedError):
            pass  # counted by metrics(); a real app would answer with an error

    async def _arrivals(self, manager: TaskManager[_Model, int], tg: asyncio.TaskGroup) -> None:
        params, rng = self.params, self._arrival_rng
        due = 0.0  # when the next request arrives (Poisson: exponential gaps)
        while True:
            rate = phase_at(params, due)[1]
            if rate > 0:
                due += rng.expovariate(rate)
            else:  # a silent phase: wait for its end
                due = min(
                    end * params.duration for _, end in _PHASES if end * params.duration > due
                )
            if due >= params.duration:
                break
            await asyncio.sleep(max(0.0, due - self.elapsed()))
            if rate > 0:
                priority = rng.random() < params.priority_fraction
                self.counts["priority"] += priority
                tg.create_task(self._request(manager, priority))
        await asyncio.sleep(max(0.0, params.duration - self.elapsed()))

    def _sample(self, manager: TaskManager[_Model, int]) -> None:
        stats, metrics = manager.stats(), manager.metrics()
        self.history.append(stats.active_workers)
        self.peak_throughput = max(self.peak_throughput, metrics.task_completion_rate)
        if self.on_sample is not None:
            t = self.elapsed()
            phase, rate = ("done", 0.0) if self.finished else phase_at(self.params, t)
            self.on_sample(Sample(t, phase, rate, stats, metrics))

    async def _sampler(self, manager: TaskManager[_Model, int]) -> None:
        while True:
            self._sample(manager)
            await asyncio.sleep(self.sample_interval)


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
    return await Simulation(params, on_sample, sample_interval=sample_interval).run()
