"""The systems under test: tasker_aio's submission styles, the raw floor and the peers.

Each runner sets its system up, times only the submission and completion of
``case.n`` tasks, tears the system down and returns the timed seconds.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from types import ModuleType
from typing import Any, Literal

import anyio

import tasker_aio
from tasker_aio import Config, MetricsCollector, TaskLifecycleTimestamps, TaskManager, TaskMetrics

from ._common import Case, Runner, Style, TaskFn, split

__all__ = [
    "METRICS_OFF",
    "NoopCollector",
    "RawPool",
    "System",
    "closed_loop",
    "raw_closed",
    "raw_gather",
    "raw_pool",
    "systems",
    "tasker",
    "tasker_queue_task_closed",
    "tasker_submit_gather",
]

Group = Literal["tasker", "floor", "peer"]


@dataclass(frozen=True)
class System:
    """A way to run tasks; ``style`` names the raw floor its ratio is taken against."""

    key: str
    label: str
    group: Group
    style: Style
    run: Runner


# ----------------------------------------------------------------- raw floor


class RawPool:
    """The floor: ``workers`` coroutines on one ``asyncio.Queue`` fed ``(fn, future)``.

    Each worker holds one resource, as a tasker worker does. Nothing else: no
    priorities, retries, health checks, metrics or yielding.
    """

    def __init__(self, workers: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[TaskFn, asyncio.Future[int]]] = asyncio.Queue()
        self._workers = [asyncio.create_task(self._work(object())) for _ in range(workers)]

    def pending(self) -> int:
        """Items queued and not yet taken by a worker."""
        return self._queue.qsize()

    def submit(self, fn: TaskFn) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self._loop.create_future()
        self._queue.put_nowait((fn, future))
        return future

    async def _work(self, resource: object) -> None:
        get = self._queue.get
        while True:
            fn, future = await get()
            try:
                result = await fn(resource)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


@asynccontextmanager
async def raw_pool(workers: int) -> AsyncIterator[RawPool]:
    pool = RawPool(workers)
    try:
        await asyncio.sleep(0)  # let the workers reach their first get()
        yield pool
    finally:
        await pool.close()


async def closed_loop(
    submit: Callable[[TaskFn], Awaitable[int]], fn: TaskFn, n: int, submitters: int
) -> None:
    """``submitters`` callers, each awaiting its result before submitting again."""

    async def caller(count: int) -> None:
        for _ in range(count):
            await submit(fn)

    await asyncio.gather(*[caller(count) for count in split(n, submitters)])


async def raw_closed(case: Case) -> float:
    async with raw_pool(case.concurrency) as pool:
        start = perf_counter()
        await closed_loop(pool.submit, case.fn, case.n, case.submitters)
        return perf_counter() - start


async def raw_gather(case: Case) -> float:
    async with raw_pool(case.concurrency) as pool:
        start = perf_counter()
        submit, fn = pool.submit, case.fn
        await asyncio.gather(*[submit(fn) for _ in range(case.n)])
        return perf_counter() - start


# ---------------------------------------------------------------- tasker_aio


class NoopCollector:
    """A MetricsCollector that records nothing: the cost of metrics is the difference."""

    def record_arrival(self) -> None:
        pass

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        pass

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        pass

    def record_retry(self) -> None:
        pass

    def metrics(self) -> TaskMetrics:
        return TaskMetrics()


def _destroy(_resource: object) -> None:
    pass


# A collector argument that is no collector at all: the manager's per-task metrics
# hooks are replaced by a C builtin that does nothing, so the metrics-cost section
# has a true zero to subtract (a no-op MetricsCollector still costs its calls).
METRICS_OFF: Any = object()
_DISCARD: Any = id  # a C builtin taking one argument: the cheapest call there is


@asynccontextmanager
async def tasker(
    workers: int, collector: MetricsCollector | None = None
) -> AsyncIterator[TaskManager[object, int]]:
    """A manager with ``workers`` fixed workers: no pool, no bursting."""
    hooks_off = collector is METRICS_OFF
    if hooks_off:
        collector = None
    config = Config[object](
        on_create=object,
        on_destroy=_destroy,
        worker_count=workers,
        resource_pool_size=0,
        burst_interval=None,
        collector=collector,
    )
    if hooks_off:
        with _metrics_hooks_off():
            manager = TaskManager[object, int](config)
    else:
        manager = TaskManager[object, int](config)
    async with manager:
        yield manager


@contextmanager
def _metrics_hooks_off() -> Iterator[None]:
    """Benchmark-only: build a manager whose metrics hooks do nothing (see METRICS_OFF).

    The manager takes its per-task hooks from ``tasker_aio._engine.recording.recorders``
    once, as it is built; this swaps that function for one that returns no-op hooks.
    """
    from tasker_aio import _manager
    from tasker_aio._metrics import Recorders

    def off(collector: object, hooks: object) -> Recorders:
        return Recorders(_DISCARD, _DISCARD, _DISCARD, _noop, _noop)

    real = getattr(_manager, "recorders")  # noqa: B009 - a name the module does not export
    setattr(_manager, "recorders", off)  # noqa: B010
    try:
        yield
    finally:
        setattr(_manager, "recorders", real)  # noqa: B010


def _noop() -> None:
    pass


async def tasker_queue_task_closed(case: Case, collector: MetricsCollector | None = None) -> float:
    async with tasker(case.concurrency, collector) as manager:
        start = perf_counter()
        await closed_loop(manager.queue_task, case.fn, case.n, case.submitters)
        return perf_counter() - start


async def tasker_queue_task_gather(case: Case) -> float:
    async with tasker(case.concurrency) as manager:
        start = perf_counter()
        queue_task, fn = manager.queue_task, case.fn
        await asyncio.gather(*[queue_task(fn) for _ in range(case.n)])
        return perf_counter() - start


async def tasker_queue_task_async_gather(case: Case) -> float:
    async with tasker(case.concurrency) as manager:
        start = perf_counter()
        queue_task_async, fn = manager.queue_task_async, case.fn
        await asyncio.gather(*[queue_task_async(fn) for _ in range(case.n)])
        return perf_counter() - start


async def tasker_submit_gather(case: Case, collector: MetricsCollector | None = None) -> float:
    async with tasker(case.concurrency, collector) as manager:
        start = perf_counter()
        submit, fn = manager.submit, case.fn
        await asyncio.gather(*[submit(fn) for _ in range(case.n)])
        return perf_counter() - start


async def tasker_map(case: Case) -> float:
    fn = case.fn

    def bound(resource: object, _item: int) -> Awaitable[int]:
        return fn(resource)

    async with tasker(case.concurrency) as manager:
        start = perf_counter()
        async for _ in manager.map(bound, range(case.n)):
            pass
        return perf_counter() - start


# --------------------------------------------------------------------- peers


async def semaphore_tasks(case: Case) -> float:
    """``asyncio.create_task`` per task, ``asyncio.Semaphore`` as the limit."""
    semaphore = asyncio.Semaphore(case.concurrency)
    fn = case.fn

    async def one() -> int:
        async with semaphore:
            return await fn(None)

    start = perf_counter()
    await asyncio.gather(*[asyncio.create_task(one()) for _ in range(case.n)])
    return perf_counter() - start


async def anyio_limiter(case: Case) -> float:
    """An anyio task group, one task per task, a ``CapacityLimiter`` as the limit."""
    limiter = anyio.CapacityLimiter(case.concurrency)
    fn = case.fn
    results: list[int] = []

    async def one() -> None:
        async with limiter:
            results.append(await fn(None))

    start = perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(case.n):
            group.start_soon(one)
    return perf_counter() - start


def _asyncio_pool_map(module: ModuleType) -> Runner:
    async def run(case: Case) -> float:
        async with module.AioPool(size=case.concurrency) as pool:
            start = perf_counter()
            await pool.map(case.fn, [None] * case.n)
            return perf_counter() - start

    return run


def _aiometer_run_all(module: ModuleType) -> Runner:
    async def run(case: Case) -> float:
        task = partial(case.fn, None)
        start = perf_counter()
        await module.run_all([task] * case.n, max_at_once=case.concurrency)
        return perf_counter() - start

    return run


def _aiojobs_spawn(module: ModuleType) -> Runner:
    async def run(case: Case) -> float:
        # pending_limit=0: an unbounded pending queue, so spawn() never waits.
        async with module.Scheduler(limit=case.concurrency, pending_limit=0) as scheduler:
            start = perf_counter()
            fn = case.fn
            jobs = [await scheduler.spawn(fn(None)) for _ in range(case.n)]
            await asyncio.gather(*[job.wait() for job in jobs])
            return perf_counter() - start

    return run


_OPTIONAL_PEERS: list[tuple[str, str, str, str, Callable[[ModuleType], Runner]]] = [
    # key, label, import name, pip name, runner factory
    ("asyncio-pool", "asyncio-pool AioPool.map", "asyncio_pool", "asyncio-pool", _asyncio_pool_map),
    ("aiometer", "aiometer run_all", "aiometer", "aiometer", _aiometer_run_all),
    ("aiojobs", "aiojobs spawn + Job.wait", "aiojobs", "aiojobs", _aiojobs_spawn),
]


def peer_versions() -> dict[str, str]:
    """Installed versions of everything benchmarked (and the loop), by distribution name."""
    from importlib import metadata

    versions = {"tasker-aio": tasker_aio.__version__}
    for name in ("anyio", "hdrhistogram", "uvloop", "asyncio-pool", "aiometer", "aiojobs"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def systems(notes: list[str]) -> list[System]:
    """Every system, in table order; peers that are not installed are noted and skipped."""
    found: list[System] = [
        System(
            "tasker.queue_task.closed",
            "tasker queue_task, closed-loop callers",
            "tasker",
            "closed",
            tasker_queue_task_closed,
        ),
        System("tasker.map", "tasker map (default max_in_flight)", "tasker", "closed", tasker_map),
        System(
            "tasker.queue_task.gather",
            "tasker gather(queue_task)",
            "tasker",
            "gather",
            tasker_queue_task_gather,
        ),
        System(
            "tasker.queue_task_async.gather",
            "tasker queue_task_async + gather",
            "tasker",
            "gather",
            tasker_queue_task_async_gather,
        ),
        System(
            "tasker.submit.gather",
            "tasker submit + gather",
            "tasker",
            "gather",
            tasker_submit_gather,
        ),
        System("raw.closed", "raw floor, closed-loop callers", "floor", "closed", raw_closed),
        System("raw.gather", "raw floor, submit all + gather", "floor", "gather", raw_gather),
        System("peer.semaphore", "create_task + Semaphore", "peer", "gather", semaphore_tasks),
        System("peer.anyio", "anyio task group + CapacityLimiter", "peer", "gather", anyio_limiter),
    ]
    for key, label, module_name, pip_name, factory in _OPTIONAL_PEERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            notes.append(f"{key} skipped: not installed (pip install {pip_name})")
            continue
        found.append(System(f"peer.{key}", label, "peer", "gather", factory(module)))
    return found
