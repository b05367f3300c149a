"""Soak: many tasks with mixed faults, cancellations and bursts; nothing lost, no growth.

Run the full soak (a million tasks) with ``python -m tests.soak`` (``nox -s soak``), or a
shorter one with ``--tasks N``. It prints throughput, traced memory at the start, after
the first quarter and at the end, and every invariant the ledger of ``tests/faults.py``
checks, and exits non-zero on any violation. ``tests/test_soak.py`` runs the same
:func:`run_soak` with about 20,000 tasks in the default suite.

The work runs in epochs, one manager each (4 base workers, burst workers up to twice as
many, a pool of 2, one re-run for ordinary failures and two for unhealthy ones), entered
by a host task of its own; an epoch ends with a graceful stop or with a kill while a
wave is in flight, alternately, each asked for a way drawn at random: ``stop()``/
``kill()`` from a task, from another thread, from a sync or async callback, from a task
or a ``run_task`` function, ``stop(timeout)``, or by cancelling the host task.
Within an epoch, waves of submissions (every entry point, every fault of the harness:
tasks that fail, raise ``BaseException`` subclasses, cancel themselves or raise stray
``CancelledError``; hooks (``on_create``/``on_destroy``, ``check_health``,
``retry_backoff``, callbacks, the logger, the collector) that raise anything; callers
that cancel or time out at random; the manager's own tasks cancelled from outside;
``stats()``/``metrics()`` read from another thread; bursts of thousands at once) are
each awaited to the last answer and checked.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

from .faults import (
    AWAIT_METHODS,
    CALLBACK_METHODS,
    COLLECTOR_METHODS,
    FAULT_KINDS,
    FUTURE_METHODS,
    FaultyCollector,
    FaultyResources,
    Ledger,
    RandomCaller,
    ShutdownHow,
    Step,
    Ticket,
)

__all__ = ["SoakReport", "main", "run_soak"]

# (plan, weight): what the attempts of a task do.
_PLANS: tuple[tuple[tuple[Step, ...], int], ...] = (
    ((Step("ok"),), 600),
    ((Step("ok", steps=2),), 150),
    ((Step("ok", steps=8),), 40),
    ((Step("healthy"), Step("ok")), 40),
    ((Step("healthy", steps=1),), 15),
    ((Step("unhealthy"), Step("ok")), 25),
    ((Step("unhealthy", steps=1),), 8),
    ((Step("fatal"),), 8),
    ((Step("ignore_cancel", steps=4), Step("ok")), 10),
    ((Step("ignore_cancel", steps=3, then_raise=True),), 5),
    ((Step("block", block=0.0005),), 2),
    ((Step("not_awaitable"),), 5),
    ((Step("keyboard"),), 2),
    ((Step("exit", steps=1),), 2),
    ((Step("self_cancel"), Step("ok")), 4),
    ((Step("self_cancel", steps=1),), 2),
    ((Step("cancel_to_timeout"), Step("ok")), 4),
    ((Step("stray_cancel", steps=1),), 4),
    ((Step("stop_inside"),), 2),
    ((Step("cancel_and_return"),), 4),
)
# How an epoch ends: gracefully, or killed with a wave in flight.
_GRACEFUL: tuple[ShutdownHow, ...] = (
    "stop",
    "thread_stop",
    "callback_stop",
    "async_callback_stop",
)
_KILLS: tuple[ShutdownHow | Literal["host_cancel"], ...] = (
    "kill",
    "thread_kill",
    "callback_kill",
    "async_callback_kill",
    "task_kill",
    "run_task_kill",
    "stop_timeout",
    "host_cancel",
)
_PLAN_LIST = [plan for plan, _ in _PLANS]
_PLAN_CUMULATIVE = list(accumulate(weight for _, weight in _PLANS))


@dataclass
class SoakReport:
    """What a soak run did and found."""

    tasks: int = 0
    seconds: float = 0.0
    epochs: int = 0
    waves: int = 0
    memory_start: int = 0  # traced bytes once the first manager runs, before any task
    memory_quarter: int = 0  # after the first quarter of the tasks
    memory_end: int = 0  # after the last wave, before the last shutdown
    peak_workers: int = 0  # resources alive at once (run_task temporaries included)
    peak_burst_workers: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.tasks / self.seconds if self.seconds else 0.0

    @property
    def growth(self) -> int:
        """Traced memory growth from the end of the first quarter to the end."""
        return self.memory_end - self.memory_quarter

    def lines(self) -> list[str]:
        c = self.counts
        return [
            f"tasks: {self.tasks:,} in {self.seconds:.1f} s: {self.throughput:,.0f} tasks/s"
            f" ({self.epochs} managers, {self.waves} waves)",
            f"memory (tracemalloc): start {self.memory_start / 1024:,.0f} KiB, after the first"
            f" quarter {self.memory_quarter / 1024:,.0f} KiB, end {self.memory_end / 1024:,.0f}"
            f" KiB, growth {self.growth / 1024:+,.1f} KiB",
            f"outcomes: {c['completed']:,} completed, {c['failed']:,} failed,"
            f" {c['neither']:,} discarded/never ran, {c['rejected']:,} refused,"
            f" {c['retried']:,} re-runs",
            f"callers: {c['cancelled']:,} cancelled, {c['timeout']:,} timed out;"
            f" faults: {c['create_failures']:,} on_create and {c['destroy_failures']:,}"
            f" on_destroy failures; {c['resources']:,} resources created, peak"
            f" {self.peak_workers} alive; up to {self.peak_burst_workers} burst workers;"
            f" {c['hook_failures']:,} other hook failures",
            "epochs ended by: "
            + ", ".join(
                f"{key[5:]} x{n}" for key, n in sorted(c.items()) if key.startswith("end: ")
            ),
            "invariants: "
            + ("all held" if not self.problems else f"{len(self.problems)} VIOLATED"),
        ]


def _memory() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0


class _Soak:
    def __init__(self, tasks: int, seed: int, epoch_tasks: int) -> None:
        self.total = tasks
        self.rng = random.Random(seed)
        self.epoch_tasks = epoch_tasks
        self.report = SoakReport()
        self.done = 0  # tasks submitted so far
        self.quarter_taken = False

    def plan(self) -> tuple[Step, ...]:
        return self.rng.choices(_PLAN_LIST, cum_weights=_PLAN_CUMULATIVE)[0]

    async def run(self) -> SoakReport:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.loop_error)
        started = time.perf_counter()
        epoch = 0
        while self.done < self.total and not self.report.problems:
            await self.epoch(
                kill=epoch % 2 == 1, size=min(self.epoch_tasks, self.total - self.done)
            )
            epoch += 1
        self.report.seconds = time.perf_counter() - started
        self.report.tasks = self.done
        self.report.epochs = epoch
        gc.collect()  # unretrieved future exceptions are reported when collected
        return self.report

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """Any error the event loop reports (say, an exception never retrieved) is a violation."""
        self.report.problems.append(f"event loop error: {context.get('message')}: {context!r}")

    async def epoch(self, *, kill: bool, size: int) -> None:
        rng = self.rng
        workers = 4
        how = rng.choice(_KILLS if kill else _GRACEFUL)
        self.report.counts[f"end: {how}"] += 1
        extra: dict[str, Any] = {}
        if rng.random() < 0.5:  # a custom collector (the protocol's calls), failing on demand
            extra["collector"] = FaultyCollector()
        ledger = Ledger(
            FaultyResources(keep_history=False),
            keep_history=False,
            worker_count=workers,
            max_worker_count=2 * workers,
            resource_pool_size=2,
            max_retries=2,
            task_retries=1,
            retry_backoff=lambda attempt: 0.0005,
            # Each scaling step reads the collector's whole metrics() (percentiles
            # included), costly under tracemalloc; waves of thousands burst anyway.
            burst_interval=0.1,
            **extra,
        )
        caller = RandomCaller(rng, cancel_rate=0.05, timeout_rate=0.05, max_timeout=0.002)
        before = asyncio.all_tasks() - {asyncio.current_task()}
        problems = self.report.problems
        release = asyncio.Event()

        async def host() -> None:
            async with ledger.manager:
                await release.wait()

        hosting = asyncio.ensure_future(host())
        try:
            while ledger.manager.state == "new" and not hosting.done():
                await asyncio.sleep(0)
            if ledger.manager.state != "running":
                problems.append(f"the manager did not start: {hosting!r}")
                return
            if not self.report.memory_start:
                self.report.memory_start = _memory()
            end = self.done + size
            while self.done < end:
                wave = self.wave_size(end - self.done)
                last = self.done + wave >= end
                if last and kill:  # killed in flight: the last quiet moment is now
                    self.sample(end=end >= self.total)
                    self.submit_wave(ledger, caller, wave)
                    self.done += wave
                    for _ in range(rng.randint(0, 30)):
                        await asyncio.sleep(0)
                    break
                self.submit_wave(ledger, caller, wave)
                self.done += wave
                await self.drain(ledger)
                self.report.waves += 1
                self.sample(end=self.done >= self.total)
                problems.extend(ledger.problems(metrics=self.report.waves % 10 == 0))
                if problems:
                    return
            await self.end(ledger, how, hosting)
            release.set()
            await asyncio.wait_for(asyncio.wait([hosting]), 60)
            await ledger.quiet()
            await ledger.settle(20)
            problems.extend(ledger.problems(final=True))
            if how == "host_cancel" and not hosting.cancelled():
                problems.append(f"the cancelled host task was not cancelled: {hosting!r}")
            if how != "host_cancel" and (hosting.cancelled() or hosting.exception()):
                problems.append(f"the host task failed: {hosting!r}")
            left = asyncio.all_tasks() - before - {asyncio.current_task()}
            if left:
                problems.append(f"{len(left)} asyncio tasks outlived the manager: {left}")
        finally:
            if not hosting.done():  # stopped early by a violation: clean up
                release.set()
                await ledger.kill()
                await asyncio.wait([hosting], timeout=60)
            self.tally(ledger, caller)

    async def end(
        self, ledger: Ledger, how: ShutdownHow | Literal["host_cancel"], host: asyncio.Task[None]
    ) -> None:
        """Shut the manager down the way ``how`` says; wait until it has stopped."""
        if how == "host_cancel":
            host.cancel()  # leaving async with by a cancellation kills
        else:
            ledger.shut_down(how)
        deadline = time.monotonic() + 60.0
        while ledger.manager.state != "stopped":
            if time.monotonic() > deadline:
                raise AssertionError(f"{how}: the manager has not stopped within 60 s")
            await asyncio.sleep(0.001)
        await ledger.finish()

    async def drain(self, ledger: Ledger, seconds: float = 60.0) -> None:
        """Wait for every answer of the wave, noting how far bursting went."""
        deadline = time.monotonic() + seconds
        while ledger.open or ledger.tasks:
            burst = ledger.manager.stats().burst_workers
            self.report.peak_burst_workers = max(self.report.peak_burst_workers, burst)
            if time.monotonic() > deadline:
                raise AssertionError(f"callers never answered: {ledger.unanswered()[:5]}")
            await asyncio.sleep(0.001)

    def wave_size(self, left: int) -> int:
        rng = self.rng
        size = rng.randint(1_000, 3_000) if rng.random() < 0.1 else rng.randint(50, 400)
        return max(1, min(size, left))

    def submit_wave(self, ledger: Ledger, caller: RandomCaller, size: int) -> None:
        rng = self.rng
        resources = ledger.resources
        if rng.random() < 0.03:
            resources.fail_creates = 1
            resources.create_fault = rng.choice(FAULT_KINDS)
        if rng.random() < 0.03:
            resources.fail_destroys = 1
            resources.destroy_fault = rng.choice(FAULT_KINDS)
        if rng.random() < 0.03:
            ledger.health_raises += rng.randint(1, 3)
            ledger.health_fault = rng.choice(FAULT_KINDS)
        if rng.random() < 0.03:
            ledger.backoff_raises += rng.randint(1, 3)
            ledger.backoff_fault = rng.choice(FAULT_KINDS)
        if rng.random() < 0.02:
            ledger.logger.fail_next += rng.randint(1, 3)
            ledger.logger.fail_kind = rng.choice(FAULT_KINDS)
        if ledger.collector is not None and rng.random() < 0.05:
            ledger.collector.fail(
                rng.choice(COLLECTOR_METHODS), rng.randint(1, 3), rng.choice(FAULT_KINDS)
            )
        if rng.random() < 0.1:
            resources.create_steps = rng.randint(0, 2)
            resources.destroy_steps = rng.randint(0, 2)
        submitted = 0
        while submitted < size:
            draw = rng.random()
            if draw < 0.35:
                self.future(ledger)
            elif draw < 0.55:
                method = rng.choice(CALLBACK_METHODS)
                ledger.callback(
                    self.plan(),
                    method,
                    coroutine=rng.random() < 0.2,
                    raises=rng.random() < 0.05,
                    raise_kind=rng.choice(FAULT_KINDS),
                )
            elif draw < 0.8:
                ticket = ledger.ticket(self.plan(), "await", rng.choice(AWAIT_METHODS))
                ledger.spawn(ticket, caller=caller)
            elif draw < 0.9:
                ledger.spawn(ledger.ticket(self.plan(), "run_task"), caller=caller)
            else:
                count = min(rng.randint(5, 30), size - submitted)
                ledger.map(
                    [self.plan() for _ in range(count)],
                    priority=rng.random() < 0.3,
                    ordered=rng.random() < 0.5,
                    max_in_flight=rng.choice([None, 2, 8]),
                    take=None if rng.random() < 0.8 else rng.randint(0, count),
                )
                submitted += count
                continue
            submitted += 1
        if rng.random() < 0.03:  # an application cancelling the manager's tasks
            ledger.cancel_own_tasks(None if rng.random() < 0.3 else rng.randrange(1 << 16))
        if rng.random() < 0.02:  # a monitoring thread
            ledger.monitor_from_thread(rng.randint(1, 5))

    def future(self, ledger: Ledger) -> None:
        rng = self.rng
        method = rng.choice(FUTURE_METHODS)
        if method == "submit":
            ticket = ledger.submit(
                self.plan(),
                priority=rng.random() < 0.3,
                once=rng.random() < 0.2,
                retries=rng.choice([None, 0, 2]),
            )
        else:
            ticket = ledger.submit(self.plan(), method)
        if rng.random() < 0.05:  # its holder gives up after a few loop steps
            _cancel_later(ledger, ticket, rng.randint(0, 10))

    def sample(self, *, end: bool) -> None:
        """Traced memory at a quiet moment (every answer in), before and after the run."""
        if not self.quarter_taken and self.done >= self.total // 4:
            self.quarter_taken = True
            self.report.memory_quarter = _memory()
        if end:
            self.report.memory_end = _memory()

    def tally(self, ledger: Ledger, caller: RandomCaller) -> None:
        counts = self.report.counts
        counts["completed"] += ledger.completed
        counts["failed"] += ledger.failed
        counts["neither"] += ledger.neither
        counts["rejected"] += ledger.rejected
        counts["retried"] += ledger.retried
        counts["cancelled"] += caller.counts["cancelled"]
        counts["timeout"] += caller.counts["timeout"]
        counts["create_failures"] += ledger.resources.create_failures
        counts["destroy_failures"] += ledger.resources.destroy_failures
        counts["hook_failures"] += sum(ledger.hook_failures.values()) + ledger.logger.failures
        if ledger.collector is not None:
            counts["hook_failures"] += sum(ledger.collector.lost.values())
        counts["resources"] += ledger.resources.created
        self.report.peak_workers = max(self.report.peak_workers, ledger.resources.peak)


def _cancel_later(ledger: Ledger, ticket: Ticket, steps: int) -> None:
    loop = asyncio.get_running_loop()

    def tick(left: int) -> None:
        if left:
            loop.call_soon(tick, left - 1)
        else:
            ledger.cancel(ticket)

    loop.call_soon(tick, steps)


def run_soak(
    tasks: int = 1_000_000,
    *,
    seed: int = 0,
    epoch_tasks: int = 100_000,
    trace_memory: bool = True,
) -> SoakReport:
    """Run the soak in a new event loop and return its report (problems included)."""
    started_tracing = trace_memory and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    try:
        return asyncio.run(_Soak(tasks, seed, epoch_tasks).run())
    finally:
        if started_tracing:
            tracemalloc.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.soak [--tasks N] [--seed S]``: exit status 1 on any violation."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks to run")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--epoch-tasks", type=int, default=100_000, help="tasks per manager (each epoch's)"
    )
    parser.add_argument(
        "--max-growth-kib",
        type=float,
        default=1024.0,
        help="allowed traced-memory growth from the first quarter to the end",
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip memory tracing")
    args = parser.parse_args(argv)
    print(f"soak: {args.tasks:,} tasks, seed {args.seed}", flush=True)
    report = run_soak(
        args.tasks,
        seed=args.seed,
        epoch_tasks=args.epoch_tasks,
        trace_memory=not args.no_tracemalloc,
    )
    problems = list(report.problems)
    if not args.no_tracemalloc and not (report.memory_quarter and report.memory_end):
        problems.append("memory was not sampled after the first quarter and at the end")
    if not args.no_tracemalloc and report.growth > args.max_growth_kib * 1024:
        problems.append(
            f"traced memory grew {report.growth / 1024:,.1f} KiB from the first quarter to the"
            f" end (allowed {args.max_growth_kib:,.0f} KiB)"
        )
    report.problems = problems
    for line in report.lines():
        print(line)
    for problem in problems[:50]:
        print("VIOLATION:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
