"""Prometheus metrics for TaskManagers, read when scraped (``pip install tasker-aio[prometheus]``).

Attach an exporter to a running manager, and serve the registry::

    from prometheus_client import start_http_server
    from tasker_aio import prometheus

    async with TaskManager(config) as manager:
        exporter = prometheus.instrument(manager, labels={"pool": "db"})
        start_http_server(9100, addr="127.0.0.1")  # or serve generate_latest() yourself
        ...
        exporter.close()

Nothing is added per task: a scrape reads the counts from ``manager.metrics()``, the
gauges from ``manager.stats()`` and the histograms from the default collector's HDR
histograms. The manager keeps its collector, so scaling and ``metrics()`` are
unchanged. With a custom collector the two histograms are absent.

With the default prefix ``tasker``, every sample labelled with ``labels``:

| metric | type | what |
|---|---|---|
| ``tasker_tasks_arrived_total`` | counter | tasks accepted (queued, or ``run_task``) |
| ``tasker_tasks_completed_total`` | counter | tasks that finished with a value |
| ``tasker_tasks_failed_total`` | counter | tasks answered with an error after a run |
| ``tasker_tasks_retried_total`` | counter | re-runs |
| ``tasker_task_execution_seconds`` | histogram | completed tasks' run time |
| ``tasker_task_queue_wait_seconds`` | histogram | completed tasks' wait, (re-)queue to run |
| ``tasker_workers`` | gauge | ready workers, by ``kind``: ``base``, ``burst`` |
| ``tasker_queued_tasks`` | gauge | waiting tasks, by ``queue``: ``main``, ``priority`` |
| ``tasker_running_tasks`` | gauge | tasks running on workers |
| ``tasker_live_resources`` | gauge | every live resource |
| ``tasker_available_resources`` | gauge | idle resources in the ``run_task`` pool |

Several managers may share a registry and a prefix, told apart by their labels: each
metric family is then exposed once, with a series per manager.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, CollectorRegistry
from prometheus_client.utils import floatToGoString

from ._exporting import DEFAULT_BUCKETS, default_collector
from ._manager import TaskManager
from ._metrics import HdrCollector

__all__ = ["DEFAULT_BUCKETS", "PrometheusExporter", "instrument"]

_logger = logging.getLogger("tasker_aio")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OWN_LABELS = frozenset({"kind", "queue", "le"})
_go_float: Callable[[float], str] = floatToGoString  # the "le" text prometheus_client uses

# (family, sample suffix, TaskMetrics field, help)
_COUNTERS = (
    ("tasks_arrived", "total_tasks_arrived", "Tasks accepted: queued, or run_task calls begun."),
    ("tasks_completed", "total_tasks_completed", "Tasks that finished with a value."),
    ("tasks_failed", "total_tasks_failed", "Tasks answered with an error after they ran."),
    ("tasks_retried", "total_tasks_retried", "Re-runs of failed tasks."),
)
# (family, help, ((TaskStats field, extra labels), ...))
_GAUGES: tuple[tuple[str, str, tuple[tuple[str, dict[str, str]], ...]], ...] = (
    (
        "workers",
        "Ready workers, base and burst.",
        (("base_workers", {"kind": "base"}), ("burst_workers", {"kind": "burst"})),
    ),
    (
        "queued_tasks",
        "Tasks waiting in the main and the priority queue.",
        (("queued_tasks", {"queue": "main"}), ("priority_tasks", {"queue": "priority"})),
    ),
    ("running_tasks", "Tasks running on workers.", (("running_tasks", {}),)),
    ("live_resources", "Every live resource.", (("live_resources", {}),)),
    ("available_resources", "Idle resources in the run_task pool.", (("available_resources", {}),)),
)
_HISTOGRAMS: tuple[tuple[str, Literal["execution", "wait"], str], ...] = (
    ("task_execution_seconds", "execution", "Completed tasks' execution time."),
    ("task_queue_wait_seconds", "wait", "Completed tasks' wait from (re-)queue to start."),
)


class _Source:
    """One instrumented manager, its labels, and the collector its histograms come from."""

    __slots__ = ("buckets", "collector", "labels", "manager")

    def __init__(
        self,
        manager: TaskManager[Any, Any],
        labels: dict[str, str],
        buckets: tuple[float, ...],
        collector: HdrCollector | None,
    ) -> None:
        self.manager = manager
        self.labels = labels
        self.buckets = buckets
        self.collector = collector

    def samples(self, prefix: str) -> list[tuple[str, str, dict[str, str], float]]:
        """Every sample, as (family, sample name, labels, value); read now."""
        metrics, stats, labels = self.manager.metrics(), self.manager.stats(), self.labels
        found = [
            (name, f"{prefix}_{name}_total", labels, float(getattr(metrics, field)))
            for name, field, _ in _COUNTERS
        ]
        found += [
            (name, f"{prefix}_{name}", {**labels, **extra}, float(getattr(stats, field)))
            for name, _, series in _GAUGES
            for field, extra in series
        ]
        if self.collector is not None:
            for name, kind, _ in _HISTOGRAMS:
                cumulative, total, count = self.collector.histogram(kind, self.buckets)
                sample = f"{prefix}_{name}"
                found += [
                    (name, f"{sample}_bucket", {**labels, "le": _go_float(bound)}, float(n))
                    for bound, n in zip(self.buckets, cumulative, strict=True)
                ]
                found.append((name, f"{sample}_bucket", {**labels, "le": "+Inf"}, float(count)))
                found.append((name, f"{sample}_count", labels, float(count)))
                found.append((name, f"{sample}_sum", labels, total))
        return found


class _Families:
    """The registry's collector for one prefix: each family once, a series per manager."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sources: tuple[_Source, ...] = ()  # replaced under _lock, read without it

    def _empty(self) -> dict[str, Metric]:
        prefix = self.prefix
        families: dict[str, Metric] = {}
        for name, _, text in _COUNTERS:
            families[name] = CounterMetricFamily(f"{prefix}_{name}", text)
        for name, text, _ in _GAUGES:
            families[name] = GaugeMetricFamily(f"{prefix}_{name}", text)
        for name, _, text in _HISTOGRAMS:
            families[name] = HistogramMetricFamily(f"{prefix}_{name}", text, unit="seconds")
        return families

    def describe(self) -> list[Metric]:
        """The families without samples: the names the registry checks for clashes."""
        return list(self._empty().values())

    def collect(self) -> list[Metric]:
        """Every manager's samples, read now; a manager that fails to answer is left out."""
        families = self._empty()
        for source in self.sources:
            try:
                samples = source.samples(self.prefix)
            except Exception:  # one manager's failure must not fail the whole scrape
                _logger.exception("reading %r for Prometheus failed", source.manager)
                continue
            for family, name, labels, value in samples:
                families[family].add_sample(name, labels, value)
        # A histogram family no manager has samples for is left out (custom collectors).
        return [f for f in families.values() if f.samples or f.type != "histogram"]


_lock = threading.Lock()
_shared: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Families]] = (
    weakref.WeakKeyDictionary()
)


class PrometheusExporter:
    """One manager's metrics in a registry, from :func:`instrument`; :meth:`close` removes them."""

    def __init__(self, registry: CollectorRegistry, families: _Families, source: _Source) -> None:
        self._registry = registry
        self._families = families
        self._source = source
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PrometheusExporter {self._families.prefix} {self._source.labels} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Take this manager's series out of the registry; idempotent.

        The registry's collector for the prefix is unregistered with its last manager.
        """
        with _lock:
            if self._closed:
                return
            self._closed = True
            families = self._families
            families.sources = tuple(s for s in families.sources if s is not self._source)
            if not families.sources:
                self._registry.unregister(families)
                del _shared[self._registry][families.prefix]


def instrument(
    manager: TaskManager[Any, Any],
    *,
    registry: CollectorRegistry = REGISTRY,
    prefix: str = "tasker",
    labels: Mapping[str, str] | None = None,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> PrometheusExporter:
    """Expose ``manager``'s metrics in ``registry``, read at each scrape.

    Scrape from any thread: the reads hop to the manager's loop (so a scrape waits for
    the loop; never scrape synchronously *from* the manager's loop thread through
    HTTP). Serving ``generate_latest(registry)`` from a handler on that loop is fine.

    Args:
        manager: the manager, entered or not.
        registry: where the metrics go; ``prometheus_client``'s default registry unless
            told otherwise.
        prefix: the start of every metric name.
        labels: constant labels on every sample, such as ``{"pool": "db"}``; managers
            sharing a registry and prefix need different ones.
        buckets: the histograms' upper bounds in seconds, ascending (``+Inf`` is added).

    Returns:
        The exporter; :meth:`PrometheusExporter.close` takes the metrics out again.

    Raises:
        TypeError: ``manager`` is not a TaskManager, or a label value is not a string.
        ValueError: a bad prefix, label name or bucket list, or another manager already
            exported with the same labels and prefix in ``registry``.
        prometheus_client.registry.DuplicateTimeseries: ``registry`` already has other
            metrics of these names.
    """
    collector = default_collector(manager)
    if not isinstance(prefix, str) or not _METRIC_NAME.fullmatch(prefix):
        raise ValueError(f"prefix must be a Prometheus metric name, got {prefix!r}")
    constant = _checked_labels(labels)
    bounds = _checked_buckets(buckets)
    source = _Source(manager, constant, bounds, collector)
    with _lock:
        by_prefix = _shared.setdefault(registry, {})
        families = by_prefix.get(prefix)
        if families is not None and any(s.labels == constant for s in families.sources):
            raise ValueError(
                f"{registry!r} already exports a manager with prefix {prefix!r} and labels"
                f" {constant!r}; give each manager its own labels"
            )
        if families is None:
            families = _Families(prefix)
            registry.register(families)
            by_prefix[prefix] = families
        families.sources = (*families.sources, source)
    return PrometheusExporter(registry, families, source)


def _checked_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    checked = dict(labels or {})
    for name, value in checked.items():
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(f"label names must be Prometheus label names, got {name!r}")
        if name in _OWN_LABELS:
            raise ValueError(f"label {name!r} is the exporter's own; choose another name")
        if not isinstance(value, str):
            raise TypeError(f"label values must be strings, got {name}={value!r}")
    return checked


def _checked_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
    bounds = [float(b) for b in buckets]
    if bounds and bounds[-1] == math.inf:
        bounds.pop()
    if not bounds or any(not (0 < b < math.inf) for b in bounds) or bounds != sorted(set(bounds)):
        raise ValueError(f"buckets must be ascending positive seconds, got {buckets!r}")
    return tuple(bounds)
