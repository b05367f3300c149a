"""The systems under test: tasker_aio's submission styles, the raw floor and the peers.

Each runner sets its system up, times only the submission and completion of
``case.n`` tasks, tears the system down and returns the timed wall and CPU seconds.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any, Literal

import anyio

import tasker_aio
from tasker_aio import Config, MetricsCollector, TaskLifecycleTimestamps, TaskManager, TaskMetrics
from tasker_aio._types import TaskTracer

from ._common import Case, Runner, Style, TaskFn, Timing, split, stopwatch
from ._private import metrics_hooks_off

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

Group = Literal["tasker", "floor", "peer", "reference"]
"""``reference``: a way to run a task that hands nothing over (no worker, no queue), shown
for scale and left out of the targets."""

# Peers that cost 5-20x the floor per task run this share of each workload's tasks:
# at full size they alone would take a third of the full run's five minutes, and no
# conclusion drawn from them hangs on a few percent.
SLOW_SHARE = 0.25


@dataclass(frozen=True)
class System:
    """A way to run tasks; ``style`` names the raw floor its ratio is taken against."""

    key: str
    label: str
    group: Group
    style: Style
    run: Runner
    share: float = 1.0  # of each workload's tasks this system runs (see SLOW_SHARE)

    def tasks(self, n: int) -> int:
        return max(1, round(n * self.share))


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


async def raw_closed(case: Case) -> Timing:
    async with raw_pool(case.concurrency) as pool:
        stop = stopwatch()
        await closed_loop(pool.submit, case.fn, case.n, case.submitters)
        return stop()


async def raw_gather(case: Case) -> Timing:
    async with raw_pool(case.concurrency) as pool:
        stop = stopwatch()
        submit, fn = pool.submit, case.fn
        for _ in range(case.batches):
            await asyncio.gather(*[submit(fn) for _ in range(case.n)])
        return stop()


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
# hooks are switched off (see _private), so the metrics-cost section has a true zero to
# subtract (a no-op MetricsCollector still costs its calls).
METRICS_OFF: Any = object()


@asynccontextmanager
async def tasker(
    workers: int, collector: MetricsCollector | None = None, tracer: TaskTracer | None = None
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
        tracer=tracer,
    )
    with metrics_hooks_off() if hooks_off else nullcontext():
        manager = TaskManager[object, int](config)
    async with manager:
        # Let the workers reach their first wait, as raw_pool does: the timed part must
        # not include starting them (a thousand, in the widest workloads).
        await asyncio.sleep(0)
        yield manager


async def tasker_queue_task_closed(case: Case, collector: MetricsCollector | None = None) -> Timing:
    async with tasker(case.concurrency, collector) as manager:
        stop = stopwatch()
        await closed_loop(manager.queue_task, case.fn, case.n, case.submitters)
        return stop()


async def tasker_queue_task_gather(case: Case) -> Timing:
    async with tasker(case.concurrency) as manager:
        stop = stopwatch()
        queue_task, fn = manager.queue_task, case.fn
        await asyncio.gather(*[queue_task(fn) for _ in range(case.n)])
        return stop()


async def tasker_queue_task_async_gather(case: Case) -> Timing:
    async with tasker(case.concurrency) as manager:
        stop = stopwatch()
        queue_task_async, fn = manager.queue_task_async, case.fn
        await asyncio.gather(*[queue_task_async(fn) for _ in range(case.n)])
        return stop()


async def tasker_submit_gather(case: Case, collector: MetricsCollector | None = None) -> Timing:
    async with tasker(case.concurrency, collector) as manager:
        stop = stopwatch()
        submit, fn = manager.submit, case.fn
        for _ in range(case.batches):
            await asyncio.gather(*[submit(fn) for _ in range(case.n)])
        return stop()


async def tasker_map(case: Case) -> Timing:
    fn = case.fn

    def bound(resource: object, _item: int) -> Awaitable[int]:
        return fn(resource)

    async with tasker(case.concurrency) as manager:
        stop = stopwatch()
        async for _ in manager.map(bound, range(case.n)):
            pass
        return stop()


# --------------------------------------------------------------------- peers


async def semaphore_tasks(case: Case) -> Timing:
    """``asyncio.create_task`` per task, ``asyncio.Semaphore`` as the limit."""
    semaphore = asyncio.Semaphore(case.concurrency)
    fn = case.fn

    async def one() -> int:
        async with semaphore:
            return await fn(None)

    stop = stopwatch()
    await asyncio.gather(*[asyncio.create_task(one()) for _ in range(case.n)])
    return stop()


async def semaphore_tasks_closed(case: Case) -> Timing:
    """Closed loop: each call is a ``create_task`` the caller awaits, under a Semaphore."""
    semaphore = asyncio.Semaphore(case.concurrency)
    create_task = asyncio.create_task

    async def one(fn: TaskFn) -> int:
        async with semaphore:
            return await fn(None)

    def submit(fn: TaskFn) -> asyncio.Task[int]:
        return create_task(one(fn))

    stop = stopwatch()
    await closed_loop(submit, case.fn, case.n, case.submitters)
    return stop()


async def semaphore_inline_closed(case: Case) -> Timing:
    """Closed loop, no hand-over: each caller runs the task itself under a Semaphore."""
    semaphore = asyncio.Semaphore(case.concurrency)

    async def submit(fn: TaskFn) -> int:
        async with semaphore:
            return await fn(None)

    stop = stopwatch()
    await closed_loop(submit, case.fn, case.n, case.submitters)
    return stop()


async def anyio_limiter(case: Case) -> Timing:
    """An anyio task group, one task per task, a ``CapacityLimiter`` as the limit."""
    limiter = anyio.CapacityLimiter(case.concurrency)
    fn = case.fn
    results: list[int] = []

    async def one() -> None:
        async with limiter:
            results.append(await fn(None))

    stop = stopwatch()
    async with anyio.create_task_group() as group:
        for _ in range(case.n):
            group.start_soon(one)
    return stop()


def _asyncio_pool_map(module: ModuleType) -> Runner:
    async def run(case: Case) -> Timing:
        async with module.AioPool(size=case.concurrency) as pool:
            stop = stopwatch()
            await pool.map(case.fn, [None] * case.n)
            return stop()

    return run


def _asyncio_pool_exec(module: ModuleType) -> Runner:
    async def run(case: Case) -> Timing:
        async with module.AioPool(size=case.concurrency) as pool:
            execute = pool.exec

            def submit(fn: TaskFn) -> Awaitable[int]:
                return execute(fn(None))  # type: ignore[no-any-return]

            stop = stopwatch()
            await closed_loop(submit, case.fn, case.n, case.submitters)
            return stop()

    return run


def _aiometer_run_all(module: ModuleType) -> Runner:
    async def run(case: Case) -> Timing:
        task = partial(case.fn, None)
        stop = stopwatch()
        await module.run_all([task] * case.n, max_at_once=case.concurrency)
        return stop()

    return run


def _aiojobs_spawn(module: ModuleType) -> Runner:
    async def run(case: Case) -> Timing:
        # pending_limit=0: an unbounded pending queue, so spawn() never waits.
        async with module.Scheduler(limit=case.concurrency, pending_limit=0) as scheduler:
            stop = stopwatch()
            fn = case.fn
            jobs = [await scheduler.spawn(fn(None)) for _ in range(case.n)]
            await asyncio.gather(*[job.wait() for job in jobs])
            return stop()

    return run


def _aiojobs_spawn_closed(module: ModuleType) -> Runner:
    async def run(case: Case) -> Timing:
        async with module.Scheduler(limit=case.concurrency, pending_limit=0) as scheduler:
            spawn = scheduler.spawn

            async def submit(fn: TaskFn) -> int:
                job = await spawn(fn(None))
                return await job.wait()  # type: ignore[no-any-return]

            stop = stopwatch()
            await closed_loop(submit, case.fn, case.n, case.submitters)
            return stop()

    return run


_PeerFactory = Callable[[ModuleType], Runner]
_OPTIONAL_PEERS: list[tuple[str, str, str, str, Style, bool, _PeerFactory]] = [
    # key, label, import name, pip name, style, slow (see SLOW_SHARE), runner factory
    (
        "asyncio-pool.exec",
        "asyncio-pool await exec()",
        "asyncio_pool",
        "asyncio-pool",
        "closed",
        False,
        _asyncio_pool_exec,
    ),
    (
        "asyncio-pool.map",
        "asyncio-pool AioPool.map",
        "asyncio_pool",
        "asyncio-pool",
        "gather",
        False,
        _asyncio_pool_map,
    ),
    (
        "aiojobs.closed",
        "aiojobs spawn + Job.wait",
        "aiojobs",
        "aiojobs",
        "closed",
        True,
        _aiojobs_spawn_closed,
    ),
    ("aiojobs", "aiojobs spawn + Job.wait", "aiojobs", "aiojobs", "gather", True, _aiojobs_spawn),
    ("aiometer", "aiometer run_all", "aiometer", "aiometer", "gather", True, _aiometer_run_all),
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
        System(
            "peer.semaphore.closed",
            "await create_task() + Semaphore",
            "peer",
            "closed",
            semaphore_tasks_closed,
        ),
        System("peer.semaphore", "create_task + Semaphore", "peer", "gather", semaphore_tasks),
        System(
            "peer.anyio",
            "anyio task group + CapacityLimiter",
            "peer",
            "gather",
            anyio_limiter,
            SLOW_SHARE,
        ),
        System(
            "ref.semaphore.inline",
            "Semaphore inline in the caller (reference)",
            "reference",
            "closed",
            semaphore_inline_closed,
        ),
    ]
    missing: dict[str, str] = {}
    for key, label, module_name, pip_name, style, slow, factory in _OPTIONAL_PEERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing[module_name] = f"{pip_name} skipped: not installed (pip install {pip_name})"
            continue
        share = SLOW_SHARE if slow else 1.0
        found.append(System(f"peer.{key}", label, "peer", style, factory(module), share))
    notes.extend(missing.values())
    return found
