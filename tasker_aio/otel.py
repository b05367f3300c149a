"""OpenTelemetry metrics and tracing for TaskManagers (``pip install tasker-aio[otel]``).

Needs ``opentelemetry-api`` only; the application brings the SDK and its exporters.

Metrics, observed when the SDK collects, for a running manager::

    from tasker_aio import otel

    async with TaskManager(config) as manager:
        metrics = otel.instrument(manager, attributes={"pool": "db"})
        ...
        metrics.close()

Tracing, one span per task from admission to answer::

    config = Config(on_create=..., on_destroy=..., worker_count=4, tracer=otel.tracer())

With the default prefix ``tasker``, every measurement carrying ``attributes``:
observable counters ``tasker.tasks.arrived``, ``.completed``, ``.failed`` and
``.retried``; histograms ``tasker.task.execution`` and ``tasker.task.queue_wait`` (in
seconds); observable up-down counters ``tasker.workers`` (by ``kind``: base, burst),
``tasker.queued_tasks`` (by ``queue``: main, priority), ``tasker.running_tasks``,
``tasker.live_resources`` and ``tasker.available_resources``: named so that
OpenTelemetry's Prometheus exporter gives them ``tasker_aio.prometheus``'s names. The
levels are up-down counters rather than gauges because they add up
across managers (OpenTelemetry's rule for choosing); Prometheus shows them as gauges.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from . import __version__
from ._exporting import DEFAULT_BUCKETS, default_collector
from ._manager import TaskManager
from ._metrics import HdrCollector

__all__ = ["OtelMetrics", "SpanTracer", "instrument", "tracer"]

_logger = logging.getLogger("tasker_aio")
_SCOPE = "tasker_aio"
_CHUNK = 256  # tasks a loop turn records at least: ~3 ms of the SDK's record(), twice

Attributes = Mapping[str, AttributeValue]
Observe = Callable[[CallbackOptions], Iterable[Observation]]

# (instrument, TaskMetrics field, description)
_COUNTERS = (
    ("tasks.arrived", "total_tasks_arrived", "Tasks accepted: queued, or run_task calls begun."),
    ("tasks.completed", "total_tasks_completed", "Tasks that finished with a value."),
    ("tasks.failed", "total_tasks_failed", "Tasks answered with an error after they ran."),
    ("tasks.retried", "total_tasks_retried", "Re-runs of failed tasks."),
)
# (instrument, unit, description, ((TaskStats field, extra attributes), ...))
_LEVELS: tuple[tuple[str, str, str, tuple[tuple[str, dict[str, str]], ...]], ...] = (
    (
        "workers",
        "{worker}",
        "Ready workers, base and burst.",
        (("base_workers", {"kind": "base"}), ("burst_workers", {"kind": "burst"})),
    ),
    (
        "queued_tasks",
        "{task}",
        "Tasks waiting in the main and the priority queue.",
        (("queued_tasks", {"queue": "main"}), ("priority_tasks", {"queue": "priority"})),
    ),
    ("running_tasks", "{task}", "Tasks running on workers.", (("running_tasks", {}),)),
    ("live_resources", "{resource}", "Every live resource.", (("live_resources", {}),)),
    (
        "available_resources",
        "{resource}",
        "Idle resources in the run_task pool.",
        (("available_resources", {}),),
    ),
)


class _Recorder:
    """Feeds one manager's histograms with the batches its collector folds.

    The SDK's ``record()`` costs microseconds a value and has no batch form: a batch of
    4096 tasks recorded at once stalled the loop for 50 ms. The fold listener only
    queues the batch; the loop records a chunk per turn (an eighth of the backlog, at
    least _CHUNK tasks: it keeps up, and the backlog stays a few turns' worth), and a
    collection or close() first records whatever is still queued.
    """

    __slots__ = ("_attributes", "_backlog", "_histograms", "_loop", "_pending", "_scheduled")

    def __init__(
        self,
        histograms: tuple[Histogram, Histogram],
        attributes: dict[str, AttributeValue],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._histograms = histograms
        self._attributes = attributes or None  # None records faster than {}
        self._loop = loop
        self._pending: deque[tuple[list[float], list[float]]] = deque()
        self._backlog = 0  # tasks pending; approximate if folds come from two threads
        self._scheduled = False

    def listen(self, runs: list[float], waits: list[float]) -> None:
        """The fold listener: queue the batch, and have the loop record it soon."""
        self._pending.append((runs, waits))
        self._backlog += len(runs)
        # Folds run on the manager's loop, or in a thread reading the metrics: then the
        # loop instrument() was called on records the batch.
        loop = _running_loop() or self._loop
        if loop is None or loop.is_closed():
            self.drain()
        elif not self._scheduled:
            self._scheduled = True
            self._loop = loop
            loop.call_soon_threadsafe(self._drain_some)

    def drain(self) -> None:
        """Record everything queued, now."""
        self._record(math.inf)

    def _drain_some(self) -> None:
        self._scheduled = False
        self._record(max(_CHUNK, self._backlog // 8))
        if self._pending and not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._drain_some)

    def _record(self, limit: float) -> None:
        execution, queue_wait = (h.record for h in self._histograms)
        attributes = self._attributes
        while limit > 0:
            try:
                runs, waits = self._pending.popleft()
            except IndexError:
                return
            if len(runs) > limit:
                cut = int(limit)
                self._pending.appendleft((runs[cut:], waits[cut:]))
                runs, waits = runs[:cut], waits[:cut]
            self._backlog -= len(runs)
            limit -= len(runs)
            for seconds in runs:
                execution(seconds, attributes)
            for seconds in waits:
                queue_wait(seconds, attributes)


class _Source:
    """One instrumented manager, its attributes, and its histograms' recorder."""

    __slots__ = ("attributes", "collector", "manager", "recorder")

    def __init__(
        self,
        manager: TaskManager[Any, Any],
        attributes: dict[str, AttributeValue],
        collector: HdrCollector | None,
        recorder: _Recorder | None,
    ) -> None:
        self.manager = manager
        self.attributes = attributes
        self.collector = collector
        self.recorder = recorder


class _Instruments:
    """A provider's instruments for one prefix, observing every manager attached.

    Instruments cannot be removed from a meter, and asking a meter for an instrument
    it has returns the first one (with the first one's callbacks), so one set per
    provider and prefix serves every manager, now and later.
    """

    def __init__(self, meter: Meter, prefix: str) -> None:
        self.sources: tuple[_Source, ...] = ()  # replaced under _lock, read without it
        for name, field, text in _COUNTERS:
            observe = self._observer("metrics", ((field, {}),))
            meter.create_observable_counter(f"{prefix}.{name}", [observe], "{task}", text)
        for name, unit, text, series in _LEVELS:
            observe = self._observer("stats", series)
            meter.create_observable_up_down_counter(f"{prefix}.{name}", [observe], unit, text)
        self.execution = meter.create_histogram(
            f"{prefix}.task.execution",
            "s",
            "Completed tasks' execution time.",
            explicit_bucket_boundaries_advisory=DEFAULT_BUCKETS,
        )
        self.queue_wait = meter.create_histogram(
            f"{prefix}.task.queue_wait",
            "s",
            "Completed tasks' wait from (re-)queue to start.",
            explicit_bucket_boundaries_advisory=DEFAULT_BUCKETS,
        )

    def _observer(self, snapshot: str, series: tuple[tuple[str, dict[str, str]], ...]) -> Observe:
        """A callback observing ``series`` (field, attributes) of each manager's snapshot."""

        def observe(options: CallbackOptions) -> list[Observation]:
            found = []
            for source in self.sources:
                try:
                    values = getattr(source.manager, snapshot)()  # metrics() or stats()
                except Exception:  # one manager's failure must not hide the others
                    _logger.exception("reading %r for OpenTelemetry failed", source.manager)
                    continue
                finally:
                    if source.recorder is not None:
                        source.recorder.drain()  # the histograms are collected after this
                found += [
                    Observation(getattr(values, field), {**source.attributes, **extra})
                    for field, extra in series
                ]
            return found

        return observe


_lock = threading.Lock()
_shared: weakref.WeakKeyDictionary[MeterProvider, dict[str, _Instruments]] = (
    weakref.WeakKeyDictionary()
)


class OtelMetrics:
    """One manager's measurements, from :func:`instrument`; :meth:`close` stops them."""

    def __init__(self, instruments: _Instruments, source: _Source) -> None:
        self._instruments = instruments
        self._source = source
        self._closed = False
        if source.collector is not None and source.recorder is not None:
            source.collector.add_fold_listener(source.recorder.listen)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<OtelMetrics {self._source.attributes} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop observing this manager and feeding its histograms; idempotent."""
        with _lock:
            if self._closed:
                return
            self._closed = True
            instruments, source = self._instruments, self._source
            instruments.sources = tuple(s for s in instruments.sources if s is not source)
            if source.collector is not None and source.recorder is not None:
                source.collector.metrics()  # a fold: tasks completed so far are recorded
                source.collector.remove_fold_listener(source.recorder.listen)
                source.recorder.drain()


def instrument(
    manager: TaskManager[Any, Any],
    *,
    meter_provider: MeterProvider | None = None,
    prefix: str = "tasker",
    attributes: Attributes | None = None,
    histograms: bool = True,
) -> OtelMetrics:
    """Observe ``manager`` through OpenTelemetry instruments (see the module docstring).

    The counters and levels are read when the SDK collects (from any thread: the reads
    hop to the manager's loop, so do not block that loop waiting for a collection, as
    a ``meter_provider.shutdown()`` called on it would). The histograms get the exact
    durations of the tasks completed from now on, in the batches the default collector
    folds (every 4096 tasks under load, and whenever the metrics are read), recorded
    a chunk per loop turn; with a custom collector they stay empty. The SDK's
    ``record()`` is what they cost, twice per completed task (``histograms=False``
    skips them). Change their buckets with an SDK ``View``.

    Args:
        manager: the manager, entered or not.
        meter_provider: the provider to create the instruments with; the global one
            when None.
        prefix: the start of every instrument name.
        attributes: added to every measurement, such as ``{"pool": "db"}``; managers
            sharing a provider and prefix need different ones.
        histograms: feed this manager's execution and queue-wait histograms.

    Returns:
        The handle; :meth:`OtelMetrics.close` stops the measurements.

    Raises:
        TypeError: ``manager`` is not a TaskManager.
        ValueError: an empty prefix, an attribute named ``kind`` or ``queue`` (the
            instruments' own), or another manager already observed with the same
            attributes and prefix through this provider.
    """
    collector = default_collector(manager)
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
    constant = dict(attributes or {})
    if own := {"kind", "queue"} & set(constant):
        raise ValueError(f"attributes {sorted(own)!r} are the instruments' own")
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _lock:
        by_prefix = _shared.setdefault(provider, {})
        instruments = by_prefix.get(prefix)
        if instruments is not None and any(s.attributes == constant for s in instruments.sources):
            raise ValueError(
                f"{provider!r} already observes a manager with prefix {prefix!r} and"
                f" attributes {constant!r}; give each manager its own attributes"
            )
        if instruments is None:
            meter = provider.get_meter(_SCOPE, __version__)
            instruments = by_prefix[prefix] = _Instruments(meter, prefix)
        recorder = None
        if collector is not None and histograms:
            pair = (instruments.execution, instruments.queue_wait)
            recorder = _Recorder(pair, constant, _running_loop())
        source = _Source(manager, constant, collector, recorder)
        instruments.sources = (*instruments.sources, source)
        return OtelMetrics(instruments, source)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SpanTracer:
    """A ``Config.tracer`` making one OpenTelemetry span per task; from :func:`tracer`.

    The span, ``tasker.task``, starts when the task is admitted, as a child of the
    submitting caller's current span, and ends when the task is answered: it covers the
    wait in the queue, every run and any retry backoff. While the task runs, its span is
    the current one, so spans the task makes are its children. Attributes:
    ``tasker.task.priority``; ``tasker.worker.kind`` (``base`` or ``burst``, of the last
    run); on the answer ``tasker.task.outcome`` (``completed``, ``failed``,
    ``cancelled``, ``discarded`` or ``killed``) and ``tasker.task.attempts`` (runs that
    ended). Each run adds a ``tasker.run`` event. A failed task records its exception
    and sets ``error.type`` and an error status; a killed one sets an error status.
    A caller's cancellation is no error.
    """

    __slots__ = ("_tracer",)

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def begin(self, priority: bool) -> Span:
        """Start the task's span in the caller's context."""
        return self._tracer.start_span("tasker.task", attributes={"tasker.task.priority": priority})

    def enter(self, span: Span, burst: bool) -> Token[Context]:
        """Make the span current in the worker for the run."""
        kind = "burst" if burst else "base"
        span.set_attribute("tasker.worker.kind", kind)
        span.add_event("tasker.run", {"tasker.worker.kind": kind})
        return otel_context.attach(trace.set_span_in_context(span))

    def leave(self, token: Token[Context] | None) -> None:
        """Restore the worker's context after the run."""
        if token is not None:  # None: enter() failed (logged by the manager)
            otel_context.detach(token)

    def end(self, span: Span, outcome: str, attempts: int, error: BaseException | None) -> None:
        """Set the outcome on the span and end it."""
        span.set_attributes({"tasker.task.outcome": outcome, "tasker.task.attempts": attempts})
        if outcome == "failed" and error is not None:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif outcome == "killed":
            span.set_status(Status(StatusCode.ERROR, "killed"))
        span.end()


def tracer(tracer_provider: TracerProvider | None = None, *, name: str = _SCOPE) -> SpanTracer:
    """A ``Config.tracer`` that makes one span per task (see :class:`SpanTracer`).

    Args:
        tracer_provider: the provider of the spans; the global one when None.
        name: the instrumentation scope's name.

    Returns:
        The tracer; pass it as ``Config(tracer=...)``.
    """
    return SpanTracer(trace.get_tracer(name, __version__, tracer_provider))
