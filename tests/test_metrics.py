"""stats(), metrics() and the collector/logger protocols."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tasker_aio import (
    Logger,
    MetricsCollector,
    TaskLifecycleTimestamps,
    TaskManager,
    TaskMetrics,
    new_collector,
)
from tasker_aio._metrics import HdrCollector

from .helpers import Resource, use

Make = Callable[..., TaskManager[Any, Any]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stamps(wait: float, run: float, at: float = 0.0) -> TaskLifecycleTimestamps:
    return TaskLifecycleTimestamps(at, at + wait, at + wait + run)


def test_empty_metrics_are_zero() -> None:
    """A fresh collector reports zeros, including both rates."""
    metrics = new_collector().metrics()
    assert metrics == TaskMetrics()
    assert metrics.success_rate == metrics.failure_rate == 0.0


def test_percentiles_ordered_and_within_range() -> None:
    """min <= p50 <= p95 <= p99 <= max, and the mean and extremes are exact."""
    collector = new_collector()
    runs = [0.001 * (i + 1) for i in range(1000)]
    for run in runs:
        collector.record_completion(stamps(wait=run / 10, run=run))
    m = collector.metrics()
    assert m.min_execution_time == pytest.approx(0.001)
    assert m.max_execution_time == pytest.approx(1.0)
    assert m.min_execution_time <= m.p50_execution_time <= m.p95_execution_time
    assert m.p95_execution_time <= m.p99_execution_time <= m.max_execution_time
    assert m.p50_execution_time == pytest.approx(0.5, rel=0.01)
    assert m.p95_execution_time == pytest.approx(0.95, rel=0.01)
    assert m.p99_execution_time == pytest.approx(0.99, rel=0.01)
    assert m.average_execution_time == pytest.approx(sum(runs) / len(runs))
    assert m.average_wait_time == pytest.approx(sum(runs) / len(runs) / 10)
    assert m.p95_wait_time <= m.p99_wait_time


def test_many_batches_fold_exactly() -> None:
    """Totals stay exact across many folded batches."""
    collector = new_collector()
    for _ in range(10_000):
        collector.record_completion(stamps(0.0, 0.002))
    m = collector.metrics()
    assert m.total_tasks_completed == 10_000
    assert m.p50_execution_time == m.p99_execution_time == pytest.approx(0.002)


def test_rates_when_everything_failed() -> None:
    """success_rate is 0 and failure_rate is 1 when every finished task failed."""
    collector = new_collector()
    for _ in range(3):
        collector.record_arrival()
        collector.record_failure(stamps(0.0, 0.1))
    m = collector.metrics()
    assert (m.success_rate, m.failure_rate) == (0.0, 1.0)
    assert m.total_tasks_failed == 3
    assert m.average_execution_time == 0.0  # failures are counted, not timed


def test_rates_use_a_sliding_window() -> None:
    """Arrival and completion rates cover the recent window and fall to zero after it."""
    clock = FakeClock()
    collector = HdrCollector(window=10.0, clock=clock)
    clock.now += 10.0
    for _ in range(50):
        collector.record_arrival()
        collector.record_completion(stamps(0.0, 0.01, at=clock.now - 0.01))
    # The window moves in steps of 1/20 of its length, hence the 6% tolerance.
    assert collector.metrics().task_arrival_rate == pytest.approx(5.0, rel=0.06)
    assert collector.metrics().task_completion_rate == pytest.approx(5.0, rel=0.06)
    clock.now += 5.0
    assert collector.metrics().task_arrival_rate == pytest.approx(5.0, rel=0.11)
    clock.now += 10.0
    m = collector.metrics()
    assert m.task_arrival_rate == 0.0
    assert m.task_completion_rate == 0.0
    assert m.total_tasks_arrived == 50


def test_rate_counts_only_elapsed_time_at_start() -> None:
    """Before a full window has passed, the rate divides by the time elapsed."""
    clock = FakeClock()
    collector = HdrCollector(window=10.0, clock=clock)
    clock.now += 2.0
    for _ in range(20):
        collector.record_arrival()
    assert collector.metrics().task_arrival_rate == pytest.approx(10.0)


def test_out_of_order_events_are_each_counted_once() -> None:
    """Events logged out of time order all count, in totals and in the rates."""
    clock = FakeClock()
    collector = HdrCollector(window=10.0, clock=clock)
    clock.now += 10.0
    for at in (1009.0, 1003.0, 1009.5, 1001.0, 1008.0):
        collector.record_completion(stamps(0.0, 0.5, at=at))
    m = collector.metrics()
    assert m.total_tasks_completed == 5
    assert m.task_completion_rate == pytest.approx(0.5, rel=0.06)


async def test_logged_events_stay_bounded(make_manager: Make) -> None:
    """The default collector folds its event logs as it goes, not only when read."""
    from tasker_aio._metrics import _FOLD_AT

    async with make_manager(worker_count=2) as manager:
        collector = manager._settings.collector
        assert isinstance(collector, HdrCollector)
        for _ in range(3):
            await asyncio.gather(*[manager.queue_task_async(use()) for _ in range(_FOLD_AT)])
            assert len(collector._arrival_log) < _FOLD_AT
            assert len(collector._completion_log) < 3 * _FOLD_AT
        assert manager.metrics().total_tasks_completed == 3 * _FOLD_AT


def test_window_is_validated() -> None:
    """new_collector(window=...) rejects non-positive windows, naming the value."""
    with pytest.raises(ValueError, match="window must be a positive number of seconds, got 0"):
        new_collector(window=0)


async def test_manager_counts_exactly(make_manager: Make) -> None:
    """Arrivals, completions, failures and retries are counted as SPEC.md says."""

    async def fail(resource: Resource) -> None:
        raise ValueError("x")

    async with make_manager(task_retries=1, retry_backoff=lambda a: 0.0) as manager:
        for i in range(5):
            await manager.queue_task(use(i))
        await manager.run_task(use())
        with pytest.raises(Exception, match="max retries exceeded"):
            await manager.queue_task(fail)
        m = manager.metrics()
    assert m.total_tasks_arrived == 7
    assert m.total_tasks_completed == 6
    assert m.total_tasks_failed == 1
    assert m.total_tasks_retried == 1
    assert m.success_rate == pytest.approx(6 / 7)
    assert m.failure_rate == pytest.approx(1 / 7)
    assert m.min_execution_time <= m.p50_execution_time <= m.max_execution_time


async def test_stats_snapshot_fields(make_manager: Make) -> None:
    """stats() reports workers, both queue lengths, running tasks and idle resources."""
    gate = asyncio.Event()
    async with make_manager(worker_count=2, resource_pool_size=1) as manager:
        running = [manager.submit(use(gate=gate)) for _ in range(2)]
        await asyncio.sleep(0)
        queued = [manager.submit(use()) for _ in range(3)]
        prio = manager.submit(use(), priority=True)
        stats = manager.stats()
        assert stats.base_workers == 2
        assert stats.active_workers == 2
        assert stats.burst_workers == 0
        assert stats.running_tasks == 2
        assert stats.queued_tasks == 3
        assert stats.priority_tasks == 1
        assert stats.available_resources == 1
        gate.set()
        await asyncio.gather(*running, *queued, prio)
        assert manager.stats().running_tasks == 0


class RecordingCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def record_arrival(self) -> None:
        self.calls.append("arrival")

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        assert stamps.queued_at <= stamps.started_at <= stamps.finished_at
        self.calls.append("completion")

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        self.calls.append("failure")

    def record_retry(self) -> None:
        self.calls.append("retry")

    def metrics(self) -> TaskMetrics:
        self.calls.append("metrics")
        return TaskMetrics(total_tasks_arrived=99)


async def test_custom_collector_receives_calls(make_manager: Make) -> None:
    """A custom MetricsCollector gets every documented call and backs metrics()."""
    collector = RecordingCollector()
    assert isinstance(collector, MetricsCollector)
    attempts: list[int] = []

    async def flaky(resource: Resource) -> None:
        attempts.append(1)
        raise ValueError("x")

    async with make_manager(collector=collector) as manager:
        await manager.queue_task(use())
        with pytest.raises(Exception, match="max retries"):
            await manager.submit(flaky, retries=1, backoff=lambda a: 0.0)
        assert manager.metrics().total_tasks_arrived == 99
    assert collector.calls == [
        "arrival", "completion", "arrival", "retry", "failure", "metrics",
    ]  # fmt: skip


class RecordingLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _log(self, level: str, msg: str, *args: Any) -> None:
        self.lines.append((level, msg % args))

    def debug(self, msg: str, *args: Any) -> None:
        self._log("debug", msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self._log("info", msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log("warning", msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        self._log("error", msg, *args)


async def test_custom_logger_receives_lifecycle_and_failures(make_manager: Make) -> None:
    """A custom Logger gets start/stop at info and worker replacement at warning."""
    logger = RecordingLogger()
    assert isinstance(logger, Logger)

    class Broken(Exception):
        pass

    async def crash(resource: Resource) -> None:
        raise Broken()

    async with make_manager(
        logger=logger, max_retries=0, check_health=lambda e: not isinstance(e, Broken)
    ) as manager:
        with pytest.raises(Exception, match="max retries"):
            await manager.queue_task(crash)
    levels = {level for level, _ in logger.lines}
    assert levels <= {"info", "warning", "error"}
    texts = [text for _, text in logger.lines]
    assert any("started" in t for t in texts)
    assert any("stopped" in t for t in texts)
    assert ("warning", "replacing a worker after an unhealthy error: Broken()") in logger.lines


async def test_default_logger_is_tasker_aio(
    make_manager: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a logger, records go to logging.getLogger('tasker_aio')."""
    with caplog.at_level(logging.INFO, logger="tasker_aio"):
        async with make_manager():
            pass
    assert {r.name for r in caplog.records} == {"tasker_aio"}
    assert any("started" in r.getMessage() for r in caplog.records)


def _fold_and_reference(count: int) -> tuple[list[int], list[int]]:
    """Fold ``count`` varied durations; record each with record_value."""
    import random

    from hdrh.histogram import HdrHistogram

    from tasker_aio._metrics import _Durations

    rng = random.Random(7)
    durations = _Durations()
    reference = HdrHistogram(1, 3600 * 10**7, 3)
    values = [
        rng.choice([rng.uniform(0, 1e-5), rng.uniform(0, 1), rng.uniform(0, 5000)])
        for _ in range(count)
    ]
    durations.add(sum(values), values, (min(values), max(values)))
    for value in values:
        reference.record_value(min(max(int(value * 10**7), 0), 3600 * 10**7))
    assert durations.hist.total_count == reference.total_count == count
    assert durations.hist.max_value == reference.max_value
    assert (durations.min, durations.max) == (min(values), max(values))  # always exact
    return list(durations.hist.counts), list(reference.counts)


def test_bulk_fold_matches_record_value() -> None:
    """A batch folds into exactly the counts of HdrHistogram.record_value."""
    folded, reference = _fold_and_reference(4000)
    assert folded == reference


def test_full_batch_folds_every_duration() -> None:
    """A full batch (4096, folded under load) counts every duration, as record_value does."""
    folded, reference = _fold_and_reference(4096)
    assert folded == reference


@given(
    queued_at=st.floats(min_value=1e-3, max_value=1e9),
    wait=st.floats(min_value=0.0, max_value=1.0),
    run=st.floats(min_value=0.0, max_value=1.0),
)
def test_outcome_gives_back_the_exact_stamps(queued_at: float, wait: float, run: float) -> None:
    """A logged outcome turns back into bit-identical stamps for custom collectors."""
    from tasker_aio._metrics import outcome, stamps

    started_at = queued_at + wait
    finished_at = started_at + run
    # Nearby stamps, as monotonic times are for any wait and run shorter than the uptime.
    assume(started_at <= 2 * queued_at and finished_at <= 2 * started_at)
    assert stamps(outcome(queued_at, started_at, finished_at)) == (
        queued_at,
        started_at,
        finished_at,
    )


def test_percentiles_stay_within_one_percent_of_the_exact_ones() -> None:
    """p50/p95/p99 of 100,000 long-tailed durations (full batches) within 1%; totals exact."""
    import random

    rng = random.Random(19)
    count = 100_000
    runs = [rng.lognormvariate(-7.0, 1.0) for _ in range(count)]  # ~1 ms, a long tail
    waits = [rng.lognormvariate(-9.0, 1.5) for _ in range(count)]
    collector = HdrCollector(clock=FakeClock())
    for run, wait in zip(runs, waits, strict=True):
        collector.record_completion(stamps(wait, run, at=1000.0))
    metrics = collector.metrics()

    def exact(values: list[float], q: float) -> float:
        return sorted(values)[max(0, math.ceil(q * len(values)) - 1)]  # nearest rank

    for name, values, q in [
        ("p50_execution_time", runs, 0.50),
        ("p95_execution_time", runs, 0.95),
        ("p99_execution_time", runs, 0.99),
        ("p95_wait_time", waits, 0.95),
        ("p99_wait_time", waits, 0.99),
    ]:
        assert getattr(metrics, name) == pytest.approx(exact(values, q), rel=0.01), name
    assert metrics.total_tasks_completed == count
    assert metrics.min_execution_time == pytest.approx(min(runs), rel=1e-9)
    assert metrics.max_execution_time == pytest.approx(max(runs), rel=1e-9)
    assert metrics.average_execution_time == pytest.approx(sum(runs) / count, rel=1e-9)
    assert metrics.average_wait_time == pytest.approx(sum(waits) / count, rel=1e-9)
