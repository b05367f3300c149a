"""tasker_aio.otel: instruments read by the SDK's in-memory reader; spans exported in memory."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.metrics import NoOpHistogram, NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tasker_aio import (
    ManagerStoppedError,
    MaxRetriesExceededError,
    TaskManager,
    WorkerAdded,
)
from tasker_aio._exporting import DEFAULT_BUCKETS
from tasker_aio.otel import instrument, tracer

from .helpers import ArrivalsOnly, Resource, refused, use, work

Make = Callable[..., TaskManager[Any, Any]]
Points = dict[tuple[str, frozenset[tuple[str, Any]]], Any]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider
    provider.shutdown()


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exported: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exported))
    yield provider
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> tuple[Points, dict[str, Any]]:
    """Every data point, (instrument, attributes) -> point; and each instrument's metric."""
    data = reader.get_metrics_data()
    assert data is not None
    points: Points = {}
    metrics: dict[str, Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "tasker_aio"
            for metric in scope.metrics:
                metrics[metric.name] = metric
                for point in metric.data.data_points:
                    points[metric.name, frozenset((point.attributes or {}).items())] = point
    return points, metrics


def number(points: Points, name: str, **attributes: Any) -> float:
    point = points[name, frozenset(attributes.items())]
    assert isinstance(point, NumberDataPoint)
    return point.value


def histogram(points: Points, name: str, **attributes: Any) -> HistogramDataPoint:
    point = points[name, frozenset(attributes.items())]
    assert isinstance(point, HistogramDataPoint)
    return point


# ------------------------------------------------------------------------ metrics


async def test_instruments_report_the_work_done(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """Counters, histograms and levels equal what the manager did and holds; kinds, units."""
    async with make_manager() as manager:
        handle = instrument(manager, meter_provider=meter_provider, attributes={"pool": "db"})
        await work(manager, completed=5, failed=1)
        points, metrics = collect(reader)
        handle.close()
    db = {"pool": "db"}
    assert number(points, "tasker.tasks.arrived", **db) == 6
    assert number(points, "tasker.tasks.completed", **db) == 5
    assert number(points, "tasker.tasks.failed", **db) == 1
    assert number(points, "tasker.tasks.retried", **db) == 1
    for name in ("tasker.task.execution", "tasker.task.queue_wait"):
        point = histogram(points, name, **db)
        assert point.count == sum(point.bucket_counts) == 5
        assert tuple(point.explicit_bounds) == DEFAULT_BUCKETS
        assert point.sum >= 0
        assert metrics[name].unit == "s"
        assert isinstance(metrics[name].data, Histogram)
    assert number(points, "tasker.workers", kind="base", **db) == 2
    assert number(points, "tasker.workers", kind="burst", **db) == 0
    assert number(points, "tasker.queued_tasks", queue="main", **db) == 0
    assert number(points, "tasker.queued_tasks", queue="priority", **db) == 0
    assert number(points, "tasker.running_tasks", **db) == 0
    assert number(points, "tasker.live_resources", **db) == 4
    assert number(points, "tasker.available_resources", **db) == 2
    counters = [f"tasker.tasks.{name}" for name in ("arrived", "completed", "failed", "retried")]
    levels = ["workers", "queued_tasks", "running_tasks", "live_resources", "available_resources"]
    for name in counters:
        assert isinstance(metrics[name].data, Sum)
        assert metrics[name].data.is_monotonic
        assert metrics[name].unit == "{task}"
    for name in levels:
        assert isinstance(metrics[f"tasker.{name}"].data, Sum)
        assert not metrics[f"tasker.{name}"].data.is_monotonic
    assert metrics["tasker.workers"].unit == "{worker}"
    assert metrics["tasker.live_resources"].unit == "{resource}"


async def test_levels_show_running_and_queued_work(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """While one task holds the only worker: 1 running, 2 on the main queue, 1 priority."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def hold(resource: Resource) -> None:
        started.set()
        await gate.wait()

    async with make_manager(worker_count=1) as manager:
        handle = instrument(manager, meter_provider=meter_provider)
        held = manager.submit(hold)
        await started.wait()
        queued = [manager.submit(use()) for _ in "ab"] + [manager.submit(use(), priority=True)]
        points, _ = collect(reader)
        gate.set()
        await asyncio.gather(held, *queued)
        handle.close()
    assert number(points, "tasker.running_tasks") == 1
    assert number(points, "tasker.queued_tasks", queue="main") == 2
    assert number(points, "tasker.queued_tasks", queue="priority") == 1


async def test_histograms_count_tasks_from_instrumentation_on(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """Tasks completed before instrument() are in the counters, not in the histograms."""
    async with make_manager() as manager:
        await work(manager, completed=2, failed=0)
        handle = instrument(manager, meter_provider=meter_provider)
        await work(manager, completed=3, failed=0)
        points, _ = collect(reader)
        handle.close()
    assert number(points, "tasker.tasks.completed") == 5
    assert histogram(points, "tasker.task.execution").count == 3
    assert histogram(points, "tasker.task.queue_wait").count == 3


async def test_two_managers_share_the_instruments_told_apart_by_attributes(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """One set of instruments, a series per manager; the same attributes twice are refused."""
    async with make_manager() as first, make_manager(worker_count=1) as second:
        handles = [
            instrument(first, meter_provider=meter_provider, attributes={"pool": "a"}),
            instrument(second, meter_provider=meter_provider, attributes={"pool": "b"}),
        ]
        with pytest.raises(ValueError, match="its own attributes"):
            instrument(second, meter_provider=meter_provider, attributes={"pool": "a"})
        await work(first, completed=3, failed=0)
        await work(second, completed=1, failed=2)
        points, _ = collect(reader)
        for handle in handles:
            handle.close()
    assert number(points, "tasker.tasks.arrived", pool="a") == 3
    assert number(points, "tasker.tasks.arrived", pool="b") == 3
    assert number(points, "tasker.tasks.failed", pool="b") == 2
    assert number(points, "tasker.workers", kind="base", pool="a") == 2
    assert number(points, "tasker.workers", kind="base", pool="b") == 1
    assert histogram(points, "tasker.task.execution", pool="a").count == 3
    assert histogram(points, "tasker.task.execution", pool="b").count == 1


async def test_close_stops_the_measurements(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """After close() a manager is no longer observed and its histograms are no longer fed."""
    async with make_manager() as manager:
        handle = instrument(manager, meter_provider=meter_provider, attributes={"pool": "a"})
        await work(manager, completed=2, failed=0)
        collect(reader)
        handle.close()
        handle.close()  # idempotent
        assert handle.closed
        await work(manager, completed=3, failed=0)
        manager.metrics()  # a fold: the histograms would hear it
        points, _ = collect(reader)
        again = instrument(manager, meter_provider=meter_provider, attributes={"pool": "a"})
        after, _ = collect(reader)
        again.close()
    assert ("tasker.tasks.arrived", frozenset({("pool", "a")})) not in points
    assert histogram(points, "tasker.task.execution", pool="a").count == 2
    assert number(after, "tasker.tasks.arrived", pool="a") == 5  # observed again


async def test_a_custom_collector_feeds_no_histograms(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """The counters are the custom collector's own; the histograms stay empty."""
    async with make_manager(collector=ArrivalsOnly()) as manager:
        handle = instrument(manager, meter_provider=meter_provider)
        await work(manager, completed=2, failed=0)
        points, _ = collect(reader)
        handle.close()
    assert number(points, "tasker.tasks.arrived") == 2
    assert number(points, "tasker.tasks.completed") == 0
    assert not any(name.startswith("tasker.task.") for name, _ in points)


async def test_a_manager_that_cannot_answer_is_left_out(
    make_manager: Make,
    meter_provider: MeterProvider,
    reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A collector that raises costs its manager's observations, logged; others are kept."""
    async with make_manager(collector=ArrivalsOnly(broken=True)) as broken, make_manager() as fine:
        handles = [
            instrument(broken, meter_provider=meter_provider, attributes={"pool": "broken"}),
            instrument(fine, meter_provider=meter_provider, attributes={"pool": "fine"}),
        ]
        await fine.queue_task(use())
        with caplog.at_level(logging.ERROR, logger="tasker_aio"):
            points, _ = collect(reader)
        for handle in handles:
            handle.close()
    assert number(points, "tasker.tasks.arrived", pool="fine") == 1
    assert number(points, "tasker.workers", kind="base", pool="broken") == 2  # stats() answer
    assert ("tasker.tasks.arrived", frozenset({("pool", "broken")})) not in points
    assert "collector down" in caplog.text


async def test_a_prefix_names_the_instruments(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """prefix= starts every instrument's name."""
    async with make_manager() as manager:
        handle = instrument(manager, meter_provider=meter_provider, prefix="jobs")
        await manager.queue_task(use())
        points, _ = collect(reader)
        handle.close()
    assert number(points, "jobs.tasks.completed") == 1
    assert histogram(points, "jobs.task.execution").count == 1


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({"prefix": ""}, "prefix"), ({"attributes": {"kind": "x"}}, "kind")],
)
async def test_bad_arguments_are_refused(
    make_manager: Make, meter_provider: MeterProvider, arguments: dict[str, Any], match: str
) -> None:
    """An empty prefix, or an attribute the instruments set themselves: ValueError."""
    async with make_manager() as manager:
        with pytest.raises(ValueError, match=match):
            instrument(manager, meter_provider=meter_provider, **arguments)


def test_only_a_task_manager_can_be_instrumented(meter_provider: MeterProvider) -> None:
    """Anything else is a TypeError naming it."""
    with pytest.raises(TypeError, match="TaskManager"):
        instrument(object(), meter_provider=meter_provider)  # type: ignore[arg-type]


class Turns:
    """Counts the event loop's turns: a callback that schedules itself again each turn."""

    def __init__(self) -> None:
        self.turn = 0
        self._handle: asyncio.Handle | None = None

    def __enter__(self) -> Turns:
        self._tick()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        self.turn += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)


class TurnHistogram(NoOpHistogram):
    """A histogram noting the loop turn of every record."""

    def __init__(self, name: str, turns: Turns, seen: list[int]) -> None:
        super().__init__(name)
        self.turns = turns
        self.seen = seen

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self.seen.append(self.turns.turn)


class TurnMeterProvider(NoOpMeterProvider):
    """A meter provider whose histograms note the turn of each record."""

    def __init__(self, turns: Turns) -> None:
        self.turns = turns
        self.seen: list[int] = []

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> NoOpMeter:
        turns, seen = self.turns, self.seen

        class Meter(NoOpMeter):
            def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> NoOpHistogram:
                return TurnHistogram(name, turns, seen)

        return Meter(name)


async def test_a_folded_batch_is_recorded_over_several_loop_turns(make_manager: Make) -> None:
    """A full batch of 4096 is never recorded in one turn of the loop; all of it is recorded."""
    with Turns() as turns:
        provider = TurnMeterProvider(turns)
        async with make_manager(worker_count=8) as manager:
            handle = instrument(manager, meter_provider=provider)
            await asyncio.gather(*[manager.submit(use()) for _ in range(3 * 4096)])
            manager.metrics()  # folds the last, partial batch
            for _ in range(200):  # let the loop record the rest, a chunk a turn
                await asyncio.sleep(0)
            per_turn = Counter(provider.seen)
            handle.close()
    assert sum(per_turn.values()) == len(provider.seen) == 2 * 3 * 4096  # every run and wait
    assert max(per_turn.values()) <= 2 * (3 * 4096) // 8  # a chunk, never a whole batch
    assert len(per_turn) >= 8


async def test_histograms_false_feeds_no_histograms(
    make_manager: Make, meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """histograms=False: counters and levels only; the histograms get nothing."""
    async with make_manager() as manager:
        handle = instrument(manager, meter_provider=meter_provider, histograms=False)
        await work(manager, completed=3, failed=0)
        points, _ = collect(reader)
        handle.close()
    assert number(points, "tasker.tasks.completed") == 3
    assert not any(name.startswith("tasker.task.") for name, _ in points)


# ------------------------------------------------------------------------ tracing


def finished(exported: InMemorySpanExporter, name: str = "tasker.task") -> list[ReadableSpan]:
    return [span for span in exported.get_finished_spans() if span.name == name]


def attribute(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes[key]


async def test_the_task_span_is_the_callers_child_and_its_spans_parent(
    make_manager: Make, tracer_provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    """Caller's span -> tasker.task (queue wait and run) -> the spans the task makes."""
    spans = tracer_provider.get_tracer("test")

    async def query(resource: Resource) -> str:
        with spans.start_as_current_span("query"):
            await asyncio.sleep(0)
        return "ok"

    async with make_manager(tracer=tracer(tracer_provider)) as manager:
        with spans.start_as_current_span("request") as request:
            assert await manager.queue_task(query) == "ok"
    (task,) = finished(exported)
    (inner,) = finished(exported, "query")
    assert task.parent is not None
    assert task.parent.span_id == request.get_span_context().span_id
    assert inner.parent is not None
    assert inner.parent.span_id == task.context.span_id
    assert task.context.trace_id == inner.context.trace_id
    assert task.attributes == {
        "tasker.task.priority": False,
        "tasker.worker.kind": "base",
        "tasker.task.outcome": "completed",
        "tasker.task.attempts": 1,
    }
    assert [event.name for event in task.events] == ["tasker.run"]
    assert task.start_time is not None and task.end_time is not None
    assert inner.start_time is not None and inner.end_time is not None
    assert task.start_time <= task.events[0].timestamp <= inner.start_time
    assert inner.end_time <= task.end_time
    assert task.status.status_code is StatusCode.UNSET


async def test_a_task_without_a_callers_span_starts_a_trace(
    make_manager: Make, tracer_provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    """No current span at submission: the task's span is a root."""
    async with make_manager(tracer=tracer(tracer_provider)) as manager:
        await manager.queue_task_with_priority(use())
    (task,) = finished(exported)
    assert task.parent is None
    assert attribute(task, "tasker.task.priority") is True


async def test_a_failed_task_records_its_error(
    make_manager: Make, tracer_provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    """Outcome failed: the exception is recorded, error.type set, status ERROR."""
    async with make_manager(tracer=tracer(tracer_provider)) as manager:
        with pytest.raises(ConnectionError):
            await manager.queue_task(refused)
    (task,) = finished(exported)
    assert attribute(task, "tasker.task.outcome") == "failed"
    assert attribute(task, "tasker.task.attempts") == 1
    assert attribute(task, "error.type") == "ConnectionError"
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "ConnectionError: refused"
    assert [event.name for event in task.events] == ["tasker.run", "exception"]


async def test_retries_are_counted_in_attempts(
    make_manager: Make, tracer_provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    """One span per task however often it runs: attempts and a tasker.run event per run."""
    runs = 0

    async def flaky(resource: Resource) -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConnectionError("once")
        return "ok"

    config = {"task_retries": 1, "retry_backoff": lambda attempt: 0.0}
    async with make_manager(tracer=tracer(tracer_provider), **config) as manager:
        assert await manager.queue_task(flaky) == "ok"
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(refused)
    recovered, gave_up = finished(exported)
    for span, outcome in ((recovered, "completed"), (gave_up, "failed")):
        assert attribute(span, "tasker.task.outcome") == outcome
        assert attribute(span, "tasker.task.attempts") == 2
        assert [event.name for event in span.events][:2] == ["tasker.run", "tasker.run"]
    assert attribute(gave_up, "error.type") == "MaxRetriesExceededError"


async def test_cancelled_discarded_and_killed_tasks_end_their_spans(
    make_manager: Make, tracer_provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    """A caller's cancellation is no error; a kill is."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def hold(resource: Resource) -> None:
        started.set()
        await gate.wait()

    async with make_manager(worker_count=1, tracer=tracer(tracer_provider)) as manager:
        running = manager.submit(hold)
        await started.wait()
        queued = manager.submit(use())
        queued.cancel()  # discarded: it never runs
        running.cancel()  # cancelled while running
        with pytest.raises(asyncio.CancelledError):
            await running
        started.clear()
        killed = manager.submit(hold)
        await started.wait()
        await manager.kill()
        with pytest.raises(ManagerStoppedError):
            await killed
    spans = {attribute(span, "tasker.task.outcome"): span for span in finished(exported)}
    assert set(spans) == {"discarded", "cancelled", "killed"}
    assert spans["discarded"].events == ()
    assert spans["discarded"].status.status_code is StatusCode.UNSET
    assert spans["cancelled"].status.status_code is StatusCode.UNSET
    assert spans["killed"].status.status_code is StatusCode.ERROR
    assert spans["killed"].status.description == "killed"


async def test_a_burst_worker_is_named_on_the_span(
    make_manager: Make, tracer_provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    """tasker.worker.kind says which kind of worker ran the task."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def hold(resource: Resource) -> None:
        started.set()
        await gate.wait()

    async with make_manager(
        worker_count=1, max_worker_count=2, burst_interval=0.01, tracer=tracer(tracer_provider)
    ) as manager:
        events = manager.events()
        held = manager.submit(hold)
        await started.wait()
        waiting = manager.submit(use())  # no worker free: the scaling loop adds one
        async with asyncio.timeout(10):
            async for event in events:
                if isinstance(event, WorkerAdded) and event.burst:
                    break
        await waiting
        gate.set()
        await held
        await events.aclose()
    kinds = [attribute(span, "tasker.worker.kind") for span in finished(exported)]
    assert kinds == ["burst", "base"]


async def test_the_global_tracer_provider_is_used_unless_told_otherwise(make_manager: Make) -> None:
    """tracer() without a provider uses the global one (no SDK here: spans record nothing)."""
    async with make_manager(tracer=tracer()) as manager:
        assert await manager.queue_task(use("done")) == "done"
