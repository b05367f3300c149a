"""tasker_aio.prometheus, scraped over HTTP from a real prometheus_client server on 127.0.0.1.

Each test starts ``prometheus_client.start_http_server`` on a free port of 127.0.0.1 with
its own registry, scrapes it from a thread (the scrape hops to the manager's loop, which
must stay free) and parses the exposition text with ``prometheus_client.parser``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import REGISTRY, CollectorRegistry, Counter, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import DuplicateTimeseries

from tasker_aio import (
    TaskLifecycleTimestamps,
    TaskManager,
    new_collector,
)
from tasker_aio.prometheus import DEFAULT_BUCKETS, instrument

from .helpers import ArrivalsOnly, Resource, use, work

Make = Callable[..., TaskManager[Any, Any]]
Scrape = Callable[[], Awaitable[str]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "observability.md"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def scrape(registry: CollectorRegistry) -> AsyncIterator[Scrape]:
    """GET /metrics from a prometheus_client HTTP server serving ``registry`` on 127.0.0.1."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
            return body.decode()

    async def fetch() -> str:
        return await asyncio.to_thread(get)  # the scrape waits for this loop: not on it

    try:
        yield fetch
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def parse(text: str) -> Samples:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


async def test_a_scrape_counts_the_work_done(
    make_manager: Make, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Counters, histogram counts and gauges over HTTP equal what the manager did and holds."""
    async with make_manager() as manager:
        exporter = instrument(manager, registry=registry, labels={"pool": "db"})
        await work(manager, completed=5, failed=1)
        samples = parse(await scrape())
        stats = manager.stats()
        exporter.close()
    db = {"pool": "db"}
    assert value(samples, "tasker_tasks_arrived_total", **db) == 6
    assert value(samples, "tasker_tasks_completed_total", **db) == 5
    assert value(samples, "tasker_tasks_failed_total", **db) == 1
    assert value(samples, "tasker_tasks_retried_total", **db) == 1
    for histogram in ("tasker_task_execution_seconds", "tasker_task_queue_wait_seconds"):
        assert value(samples, f"{histogram}_count", **db) == 5
        assert value(samples, f"{histogram}_bucket", le="+Inf", **db) == 5
        buckets = [value(samples, f"{histogram}_bucket", le=str(b), **db) for b in DEFAULT_BUCKETS]
        assert buckets == sorted(buckets)
        assert value(samples, f"{histogram}_sum", **db) >= 0
    assert value(samples, "tasker_workers", kind="base", **db) == 2
    assert value(samples, "tasker_workers", kind="burst", **db) == 0
    assert value(samples, "tasker_queued_tasks", queue="main", **db) == 0
    assert value(samples, "tasker_queued_tasks", queue="priority", **db) == 0
    assert value(samples, "tasker_running_tasks", **db) == 0
    assert value(samples, "tasker_live_resources", **db) == stats.live_resources == 4
    assert value(samples, "tasker_available_resources", **db) == stats.available_resources == 2


async def test_gauges_show_running_and_queued_work(
    make_manager: Make, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """While one task holds the only worker: 1 running, 2 on the main queue, 1 priority."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def hold(resource: Resource) -> None:
        started.set()
        await gate.wait()

    async with make_manager(worker_count=1) as manager:
        exporter = instrument(manager, registry=registry)
        held = manager.submit(hold)
        await started.wait()
        queued = [manager.submit(use()) for _ in "ab"] + [manager.submit(use(), priority=True)]
        samples = parse(await scrape())
        gate.set()
        await asyncio.gather(held, *queued)
        after = parse(await scrape())
        exporter.close()
    assert value(samples, "tasker_running_tasks") == 1
    assert value(samples, "tasker_queued_tasks", queue="main") == 2
    assert value(samples, "tasker_queued_tasks", queue="priority") == 1
    assert value(samples, "tasker_tasks_completed_total") == 0
    assert value(after, "tasker_running_tasks") == 0
    assert value(after, "tasker_tasks_completed_total") == 4
    assert value(after, "tasker_task_execution_seconds_count") == 4


async def test_two_managers_share_a_registry_told_apart_by_labels(
    make_manager: Make, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Each family is exposed once, with one series per manager, counted separately."""
    async with make_manager() as first, make_manager(worker_count=1) as second:
        exporters = [
            instrument(first, registry=registry, labels={"pool": "a", "zone": "x"}),
            instrument(second, registry=registry, labels={"pool": "b", "zone": "x"}),
        ]
        await work(first, completed=3, failed=0)
        await work(second, completed=1, failed=2)
        text = await scrape()
        for exporter in exporters:
            exporter.close()
    assert text.count("# TYPE tasker_tasks_arrived_total counter") == 1
    assert text.count("# TYPE tasker_task_execution_seconds histogram") == 1
    samples = parse(text)
    a, b = {"pool": "a", "zone": "x"}, {"pool": "b", "zone": "x"}
    assert value(samples, "tasker_tasks_arrived_total", **a) == 3
    assert value(samples, "tasker_tasks_arrived_total", **b) == 3
    assert value(samples, "tasker_tasks_failed_total", **a) == 0
    assert value(samples, "tasker_tasks_failed_total", **b) == 2
    assert value(samples, "tasker_tasks_retried_total", **b) == 2
    assert value(samples, "tasker_task_execution_seconds_count", **a) == 3
    assert value(samples, "tasker_task_execution_seconds_count", **b) == 1
    assert value(samples, "tasker_workers", kind="base", **a) == 2
    assert value(samples, "tasker_workers", kind="base", **b) == 1


async def test_the_same_labels_twice_are_refused(
    make_manager: Make, registry: CollectorRegistry
) -> None:
    """A second manager with the same prefix and labels would duplicate series: ValueError."""
    async with make_manager() as first, make_manager() as second:
        exporter = instrument(first, registry=registry, labels={"pool": "a"})
        with pytest.raises(ValueError, match="its own labels"):
            instrument(second, registry=registry, labels={"pool": "a"})
        other_prefix = instrument(second, registry=registry, prefix="jobs", labels={"pool": "a"})
        other_prefix.close()
        exporter.close()


async def test_close_takes_the_series_out(
    make_manager: Make, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """close() removes one manager's series; with the last, the metrics leave the registry."""
    async with make_manager() as first, make_manager() as second:
        one = instrument(first, registry=registry, labels={"pool": "a"})
        two = instrument(second, registry=registry, labels={"pool": "b"})
        one.close()
        one.close()  # idempotent
        assert one.closed
        assert not two.closed
        samples = parse(await scrape())
        assert ("tasker_tasks_arrived_total", frozenset({("pool", "b")})) in samples
        assert ("tasker_tasks_arrived_total", frozenset({("pool", "a")})) not in samples
        two.close()
        assert "tasker_" not in await scrape()
        again = instrument(first, registry=registry, labels={"pool": "a"})  # room again
        assert value(parse(await scrape()), "tasker_tasks_arrived_total", pool="a") == 0
        again.close()


async def test_the_default_registry_is_used_unless_told_otherwise(make_manager: Make) -> None:
    """instrument(manager) registers in prometheus_client.REGISTRY; close() unregisters."""
    arrived = "tasker_default_registry_test_tasks_arrived_total"
    async with make_manager() as manager:
        exporter = instrument(manager, prefix="tasker_default_registry_test")
        try:
            await manager.queue_task(use())
            assert REGISTRY.get_sample_value(arrived) == 1
        finally:
            exporter.close()
        assert REGISTRY.get_sample_value(arrived) is None


async def test_a_custom_collector_has_counters_and_gauges_but_no_histograms(
    make_manager: Make, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """The counters are the custom collector's own; the histogram families are left out."""
    async with make_manager(collector=ArrivalsOnly()) as manager:
        exporter = instrument(manager, registry=registry)
        await work(manager, completed=2, failed=0)
        text = await scrape()
        exporter.close()
    samples = parse(text)
    assert value(samples, "tasker_tasks_arrived_total") == 2
    assert value(samples, "tasker_tasks_completed_total") == 0  # what ArrivalsOnly reports
    assert value(samples, "tasker_workers", kind="base") == 2
    assert "_seconds" not in text


async def test_a_manager_that_cannot_answer_is_left_out_of_the_scrape(
    make_manager: Make,
    registry: CollectorRegistry,
    scrape: Scrape,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A collector that raises costs its manager's series, logged; the others are scraped."""
    async with make_manager(collector=ArrivalsOnly(broken=True)) as broken, make_manager() as fine:
        exporters = [
            instrument(broken, registry=registry, labels={"pool": "broken"}),
            instrument(fine, registry=registry, labels={"pool": "fine"}),
        ]
        await fine.queue_task(use())
        with caplog.at_level(logging.ERROR, logger="tasker_aio"):
            samples = parse(await scrape())
        for exporter in exporters:
            exporter.close()
    assert value(samples, "tasker_tasks_arrived_total", pool="fine") == 1
    assert not any(("pool", "broken") in labels for _, labels in samples)
    assert "collector down" in caplog.text


async def test_buckets_and_prefix_are_configurable(
    make_manager: Make, registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Given buckets (+Inf added) and prefix name the series; slow and quick tasks split."""

    async def slow(resource: Resource) -> None:
        await asyncio.sleep(0.15)

    async with make_manager() as manager:
        exporter = instrument(manager, registry=registry, prefix="jobs", buckets=(0.1, 10.0))
        await asyncio.gather(manager.queue_task(slow), *[manager.queue_task(use()) for _ in "abc"])
        samples = parse(await scrape())
        exporter.close()
    buckets = {
        dict(labels)["le"]: count
        for (name, labels), count in samples.items()
        if name == "jobs_task_execution_seconds_bucket"
    }
    assert buckets == {"0.1": 3, "10.0": 4, "+Inf": 4}
    assert value(samples, "jobs_task_execution_seconds_sum") >= 0.15


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"prefix": "9lives"}, ValueError, "prefix"),
        ({"prefix": ""}, ValueError, "prefix"),
        ({"labels": {"bad-name": "x"}}, ValueError, "bad-name"),
        ({"labels": {"__reserved": "x"}}, ValueError, "__reserved"),
        ({"labels": {"kind": "x"}}, ValueError, "exporter's own"),
        ({"labels": {"pool": 1}}, TypeError, "pool=1"),
        ({"buckets": ()}, ValueError, "buckets"),
        ({"buckets": (1.0, 0.5)}, ValueError, "buckets"),
        ({"buckets": (0.0, 1.0)}, ValueError, "buckets"),
        ({"buckets": (1.0, 1.0)}, ValueError, "buckets"),
    ],
)
async def test_bad_arguments_are_refused(
    make_manager: Make,
    registry: CollectorRegistry,
    arguments: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    """Each bad argument raises at once, naming it; nothing is registered."""
    async with make_manager() as manager:
        with pytest.raises(error, match=match):
            instrument(manager, registry=registry, **arguments)
        assert list(registry.collect()) == []


def test_only_a_task_manager_can_be_instrumented(registry: CollectorRegistry) -> None:
    """Anything else is a TypeError naming it."""
    with pytest.raises(TypeError, match="TaskManager"):
        instrument(object(), registry=registry)  # type: ignore[arg-type]


async def test_a_trailing_inf_bucket_is_accepted(
    make_manager: Make, registry: CollectorRegistry
) -> None:
    """buckets may end with +Inf, as prometheus_client's own do; it is not doubled."""
    async with make_manager() as manager:
        exporter = instrument(manager, registry=registry, buckets=(1.0, float("inf")))
        await manager.queue_task(use())
        names = [
            sample.labels.get("le")
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "tasker_task_execution_seconds_bucket"
        ]
        exporter.close()
    assert names == ["1.0", "+Inf"]


async def test_names_taken_by_other_metrics_are_refused(
    make_manager: Make, registry: CollectorRegistry
) -> None:
    """The registry's own clash check applies: DuplicateTimeseries, nothing half-registered."""
    Counter("tasker_tasks_arrived", "somebody else's", registry=registry)
    async with make_manager() as manager:
        with pytest.raises(DuplicateTimeseries):
            instrument(manager, registry=registry)
        exporter = instrument(manager, registry=registry, prefix="mine")
        exporter.close()


def test_the_collector_histogram_reads_what_the_exporter_exposes() -> None:
    """The exporter's buckets are HdrCollector.histogram()'s: values on a bound count in it."""
    collector = new_collector()
    for run in (0.001, 0.01, 0.01, 2.0):
        collector.record_completion(TaskLifecycleTimestamps(0.0, 0.0, run))
    counts, total, count = collector.histogram("execution", DEFAULT_BUCKETS)
    assert dict(zip(DEFAULT_BUCKETS, counts, strict=True))[0.01] == 3
    assert counts[-1] == count == 4
    assert total == pytest.approx(2.021)


# ------------------------------------------------------------- the docs' sample


def docs_blocks() -> Iterator[tuple[str, str]]:
    """docs/observability.md's fenced blocks: (info string, body)."""
    fence = re.compile(r"^```(\w+[^\n]*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
    yield from fence.findall(DOCS.read_text())


def test_the_docs_sample_is_what_a_scrape_returns(tmp_path: Path) -> None:
    """docs/observability.md's scrape output is its program's, line for line.

    Only the two ``_sum`` values (measured durations) may differ.
    """
    blocks = dict(docs_blocks())
    program = blocks['python title="prometheus_scrape.py"']
    shown = blocks['text title="Scrape output"']
    (tmp_path / "prometheus_scrape.py").write_text(program)
    completed = subprocess.run(
        [sys.executable, "prometheus_scrape.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    sums = re.compile(r"^(\S+_sum\{[^}]*\}) [0-9.e+-]+$")

    def masked(text: str) -> list[str]:
        return [sums.sub(r"\1 <measured>", line) for line in text.strip().splitlines()]

    assert masked(completed.stdout) == masked(shown)
    assert len(masked(shown)) > 40
