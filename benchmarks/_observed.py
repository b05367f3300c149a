"""Managers with an exporter or a tracer attached, for the metrics-cost section.

Each runner times what ``tasker_queue_task_closed`` / ``tasker_submit_gather`` time, on
a manager with the default collector plus one way of observing it. What an exporter
does off the tasks' path (a scrape, a collection) happens once per repetition, after
the timed part. Rows whose library (``prometheus_client``, the OpenTelemetry SDK) is
missing are left out, with a note.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial

from tasker_aio import TaskManager
from tasker_aio._types import TaskTracer

from ._common import Case, Runner, Style, Timing, stopwatch
from ._systems import closed_loop, tasker

__all__ = ["observed_systems"]

Manager = TaskManager[object, int]
Read = Callable[[], object]
# Attaches to a running manager; yields a read (a scrape or a collection) and detaches.
Attach = Callable[[Manager], AbstractContextManager[Read]]


async def _tasks(style: Style, case: Case, manager: Manager) -> None:
    """What tasker_queue_task_closed / tasker_submit_gather time."""
    if style == "closed":
        await closed_loop(manager.queue_task, case.fn, case.n, case.submitters)
    else:
        submit, fn = manager.submit, case.fn
        for _ in range(case.batches):
            await asyncio.gather(*[submit(fn) for _ in range(case.n)])


@contextmanager
def _nothing(manager: Manager) -> Iterator[Read]:
    yield lambda: None


@contextmanager
def _prometheus(manager: Manager) -> Iterator[Read]:
    from prometheus_client import CollectorRegistry, generate_latest

    from tasker_aio import prometheus

    registry = CollectorRegistry()
    exporter = prometheus.instrument(manager, registry=registry)
    try:
        yield partial(generate_latest, registry)
    finally:
        exporter.close()


@contextmanager
def _otel_metrics(manager: Manager) -> Iterator[Read]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tasker_aio import otel

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    handle = otel.instrument(manager, meter_provider=provider)
    try:
        yield reader.get_metrics_data
    finally:
        handle.close()
        provider.shutdown()


def _otel_tracer(sampled: bool) -> TaskTracer:
    """tasker_aio.otel.tracer() on an SDK provider whose spans go nowhere."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    from tasker_aio import otel

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ALWAYS_ON if sampled else ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    return otel.tracer(provider)


async def _observed(
    style: Style,
    attach: Attach,
    tracer: Callable[[], TaskTracer] | None,
    read_in_time: bool,
    case: Case,
) -> Timing:
    """The timed part; ``read_in_time`` also times the read (with its last fold)."""
    async with tasker(case.concurrency, tracer=None if tracer is None else tracer()) as manager:
        with attach(manager) as read:
            stop = stopwatch()
            await _tasks(style, case, manager)
            if read_in_time:
                read()
                return stop()
            timing = stop()
            read()  # a scrape or a collection, once per repetition, after the timed part
            return timing


def observed_systems(notes: list[str]) -> list[tuple[Style, str, Runner]]:
    """(style, label, runner) of each observed manager whose library is installed."""
    # (what is attached, attach, tracer, read_in_time)
    kinds: list[tuple[str, Attach, Callable[[], TaskTracer] | None, bool]] = [
        # Tracing off is the default, so this is the default collector's row again: a
        # control whose difference from that row is this run's noise.
        ("tracing off (control)", _nothing, None, False),
    ]
    if importlib.util.find_spec("prometheus_client") is not None:
        kinds.append(("Prometheus exporter", _prometheus, None, False))
    else:
        notes.append("prometheus_client is not installed: no Prometheus exporter rows")
    if importlib.util.find_spec("opentelemetry.sdk") is not None:
        kinds += [
            # The histograms record each batch as it is folded; the last partial batch
            # is folded by the read, timed here so that the row counts every task.
            ("OTel metrics", _otel_metrics, None, True),
            ("OTel tracing, sampled out", _nothing, partial(_otel_tracer, False), False),
            ("OTel tracing, no-op exporter", _nothing, partial(_otel_tracer, True), False),
        ]
    else:
        notes.append("the OpenTelemetry SDK is not installed: no OpenTelemetry rows")
    styles: dict[Style, str] = {"closed": "tasker queue_task", "gather": "tasker submit"}
    return [
        (
            style,
            f"{name}, default collector + {kind}",
            partial(_observed, style, attach, tracer, read_in_time),
        )
        for style, name in styles.items()
        for kind, attach, tracer, read_in_time in kinds
    ]
