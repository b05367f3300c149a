"""``python -m tasker_aio demo``: a simulated workload, drawn live in the terminal.

The simulation (:func:`simulate`) drives a real :class:`TaskManager` the way an
application would: fake "model handles" that take a while to load, requests arriving
at random (a quiet phase, a burst well above what the base workers can serve, then
quiet again), a few crashes that replace the worker, and a graceful stop. It reports
what it sees through ``stats()`` and ``metrics()`` only, so a user can copy it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from . import (
    Config,
    ManagerStoppedError,
    MaxRetriesExceededError,
    TaskManager,
    TaskMetrics,
    TaskStats,
    new_collector,
)

__all__ = ["DemoParams", "Sample", "Screen", "Summary", "build_parser", "main", "simulate"]


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
    arrival_rng = random.Random(params.seed)
    work_rng = random.Random(None if params.seed is None else params.seed + 1)
    counts = {"loaded": 0, "unloaded": 0, "crashes": 0, "priority": 0}
    logger = _QuietLogger()

    async def load_model() -> _Model:
        await asyncio.sleep(params.create_cost)
        counts["loaded"] += 1
        return _Model(counts["loaded"])

    def unload_model(model: _Model) -> None:
        counts["unloaded"] += 1

    async def infer(model: _Model) -> int:
        await asyncio.sleep(
            work_rng.lognormvariate(math.log(params.median_latency), params.latency_spread)
        )
        if work_rng.random() < params.failure_rate:
            counts["crashes"] += 1
            raise ModelCrashed(f"model #{model.ident} crashed")
        return model.ident

    config = Config[_Model](
        on_create=load_model,
        on_destroy=unload_model,
        worker_count=params.workers,
        max_worker_count=params.max_workers,
        resource_pool_size=0,
        check_health=lambda exc: not isinstance(exc, ModelCrashed),
        max_retries=params.max_retries,
        logger=logger,
        collector=new_collector(window=2.0),
    )
    started = time.monotonic()
    finished = False
    history: list[int] = []
    peak_throughput = 0.0

    def elapsed() -> float:
        return time.monotonic() - started

    async def request(manager: TaskManager[_Model, int], priority: bool) -> None:
        submit = manager.queue_task_with_priority if priority else manager.queue_task
        try:
            await submit(infer)
        except (MaxRetriesExceededError, ManagerStoppedError):
            pass  # counted by metrics(); a real app would answer with an error

    async def arrivals(manager: TaskManager[_Model, int], tg: asyncio.TaskGroup) -> None:
        due = 0.0  # when the next request arrives (Poisson: exponential gaps)
        while True:
            rate = phase_at(params, due)[1]
            if rate > 0:
                due += arrival_rng.expovariate(rate)
            else:  # a silent phase: wait for its end
                due = min(
                    end * params.duration for _, end in _PHASES if end * params.duration > due
                )
            if due >= params.duration:
                break
            await asyncio.sleep(max(0.0, due - elapsed()))
            if rate > 0:
                priority = arrival_rng.random() < params.priority_fraction
                counts["priority"] += priority
                tg.create_task(request(manager, priority))
        await asyncio.sleep(max(0.0, params.duration - elapsed()))

    def sample(manager: TaskManager[_Model, int]) -> None:
        nonlocal peak_throughput
        stats, metrics = manager.stats(), manager.metrics()
        history.append(stats.active_workers)
        peak_throughput = max(peak_throughput, metrics.task_completion_rate)
        if on_sample is not None:
            t = elapsed()
            phase, rate = ("done", 0.0) if finished else phase_at(params, t)
            on_sample(Sample(t, phase, rate, stats, metrics))

    async def sampler(manager: TaskManager[_Model, int]) -> None:
        while True:
            sample(manager)
            await asyncio.sleep(sample_interval)

    async with TaskManager[_Model, int](config) as manager:
        started = time.monotonic()
        watcher = asyncio.create_task(sampler(manager))
        try:
            async with asyncio.TaskGroup() as tg:
                await arrivals(manager, tg)
        finally:
            watcher.cancel()
        finished = True  # every request has its answer
        sample(manager)
        await manager.stop()  # graceful; the context manager would do it too
    return Summary(
        params=params,
        elapsed=elapsed(),
        metrics=manager.metrics(),
        priority_submitted=counts["priority"],
        worker_history=tuple(history),
        peak_workers=max(history),
        peak_throughput=peak_throughput,
        models_loaded=counts["loaded"],
        models_unloaded=counts["unloaded"],
        crashes=counts["crashes"],
        errors=tuple(logger.errors),
    )


# ---------------------------------------------------------------------------- drawing

_Segment = tuple[str, str]  # text, SGR style ("" = plain)


def sparkline(values: Sequence[int], top: int, glyphs: str) -> str:
    """One glyph per value, scaled so that ``top`` is the tallest glyph."""
    n = len(glyphs)
    return "".join(glyphs[min(n - 1, max(0, math.ceil(v / top * n) - 1))] for v in values)


def squeeze(values: Sequence[int], width: int) -> list[int]:
    """At most ``width`` values: the maximum of each of ``width`` equal slices."""
    if len(values) <= width:
        return list(values)
    step = len(values) / width
    return [
        max(values[int(i * step) : max(int(i * step) + 1, int((i + 1) * step))])
        for i in range(width)
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


class Screen:
    """Draws samples: redrawn in place on a terminal, one line a second otherwise."""

    def __init__(self, out: TextIO, params: DemoParams, *, live: bool, color: bool) -> None:
        """Draw on ``out``; ``live`` redraws in place with ANSI codes, ``color`` adds SGR."""
        self.out, self.params, self.live, self.color = out, params, live, color
        try:
            "▁█▓░".encode(getattr(out, "encoding", None) or "ascii")
            self.spark, self.bar = "▁▂▃▄▅▆▇█", "█▓░"
        except (UnicodeEncodeError, LookupError):
            self.spark, self.bar = "_.:-=+*#", "#+."
        self._history: list[int] = []
        self._drawn = 0
        self._next_line = 1.0

    def header(self) -> None:
        """Say what is about to run."""
        p = self.params
        self.out.write(
            f"tasker_aio demo: {p.duration:g} s of simulated model inference; load"
            f" {p.rate:g}/s -> {p.burst_rate:g}/s -> {p.rate:g}/s; workers"
            f" {p.workers}..{p.max_workers}; {p.failure_rate * 100:g}% crashes\n"
        )
        if self.live:
            self.out.write("\x1b[?25l")  # hide the cursor while redrawing
        self.out.flush()

    def update(self, s: Sample) -> None:
        """Show one sample."""
        self._history.append(s.stats.active_workers)
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            lines = [self._paint(line, width) for line in self._frame(s, width)]
            up = f"\x1b[{self._drawn}A" if self._drawn else ""
            self.out.write(up + "".join(f"\r\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        elif s.elapsed >= self._next_line:
            self._next_line = math.floor(s.elapsed) + 1.0
            self.out.write(self._line(s) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Give the cursor back."""
        if self.live:
            self.out.write("\x1b[?25h")
            self.out.flush()

    def _paint(self, line: list[_Segment], width: int) -> str:
        parts, room = [], width
        for text, style in line:
            text = text[: max(room, 0)]
            room -= len(text)
            if text:
                parts.append(f"\x1b[{style}m{text}\x1b[0m" if self.color and style else text)
        return "".join(parts)

    def _frame(self, s: Sample, width: int) -> list[list[_Segment]]:
        st, m, p = s.stats, s.metrics, self.params
        base, burst, free = self.bar[0], self.bar[1], self.bar[2]
        idle = max(0, p.max_workers - st.active_workers)
        load = f"  {s.target_rate:g} arrivals/s" if s.target_rate else ""
        spark = sparkline(self._history[-max(1, width - 12) :], p.max_workers, self.spark)
        failed = m.total_tasks_failed
        return [
            [
                ("tasker_aio demo", "1"),
                (f"  {s.elapsed:5.1f} s / {p.duration:g} s  ", ""),
                (s.phase, "33" if s.phase == "burst" else "36"),
                (load, ""),
            ],
            [
                ("workers     ", "2"),
                (f"{st.base_workers} base + {st.burst_workers} burst", ""),
                (f" = {st.active_workers}/{p.max_workers}  ", "1"),
                (base * st.base_workers, "36"),
                (burst * st.burst_workers, "33"),
                (free * idle, "2"),
            ],
            [("history     ", "2"), (spark, "36")],
            [
                ("queues      ", "2"),
                (f"main {st.queued_tasks:<6}priority {st.priority_tasks:<6}", ""),
                (f"running {st.running_tasks}", ""),
            ],
            [
                ("throughput  ", "2"),
                (f"{m.task_completion_rate:.1f} done/s", "1"),
                (f"   arrivals {m.task_arrival_rate:.1f}/s", ""),
            ],
            [
                ("latency     ", "2"),
                (f"exec p95 {_ms(m.p95_execution_time)}  p99 {_ms(m.p99_execution_time)}", ""),
                (f"   wait p95 {_ms(m.p95_wait_time)}", ""),
            ],
            [
                ("outcomes    ", "2"),
                (f"{m.total_tasks_completed} ok", "32"),
                (f"   {failed} failed", "31" if failed else ""),
                (f"   {m.total_tasks_retried} retried", ""),
            ],
        ]

    def _line(self, s: Sample) -> str:
        st, m = s.stats, s.metrics
        return (
            f"[{s.elapsed:4.1f}s] {s.phase:<9} workers {st.base_workers}+{st.burst_workers}"
            f"/{self.params.max_workers} queue {st.queued_tasks}/{st.priority_tasks}"
            f" running {st.running_tasks} {m.task_completion_rate:.1f} done/s"
            f" p95 {_ms(m.p95_execution_time)} p99 {_ms(m.p99_execution_time)}"
            f" failed {m.total_tasks_failed} retried {m.total_tasks_retried}"
        )

    def summary(self, r: Summary) -> None:
        """Print the final summary."""
        m, p = r.metrics, r.params
        title = "\x1b[1msummary\x1b[0m" if self.color else "summary"
        lines = [
            title,
            f"  ran          {r.elapsed:.1f} s ({p.duration:g} s of load, then a graceful stop)",
            f"  tasks        {m.total_tasks_arrived} submitted ({r.priority_submitted} priority):"
            f" {m.total_tasks_completed} succeeded, {m.total_tasks_failed} failed,"
            f" {m.total_tasks_retried} retried",
            f"  success rate {m.success_rate:.1%}",
            f"  workers      {p.workers} base, peak {r.peak_workers} of {p.max_workers};"
            f" {r.models_loaded} models loaded, {r.models_unloaded} unloaded,"
            f" {r.crashes} replaced after a crash",
            f"  throughput   peak {r.peak_throughput:.1f} tasks/s,"
            f" average {m.total_tasks_completed / max(r.elapsed, 1e-9):.1f} tasks/s",
            f"  exec latency p50 {_ms(m.p50_execution_time)}, p95 {_ms(m.p95_execution_time)},"
            f" p99 {_ms(m.p99_execution_time)}, max {_ms(m.max_execution_time)}",
            f"  wait latency avg {_ms(m.average_wait_time)}, p95 {_ms(m.p95_wait_time)},"
            f" p99 {_ms(m.p99_wait_time)}",
            f"  workers/time {sparkline(squeeze(r.worker_history, 60), p.max_workers, self.spark)}",
        ]
        lines += [f"  error        {e}" for e in r.errors]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


# ---------------------------------------------------------------------------- command line


def _number(
    kind: Callable[[str], float], low: float, high: float = math.inf
) -> Callable[[str], Any]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside [{low:g}, {high:g}]")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tasker_aio`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m tasker_aio",
        description="tasker_aio command-line tools.",
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    d = DemoParams()
    demo = commands.add_parser(
        "demo",
        help="run a simulated workload and watch workers scale, live",
        description=(
            "Run a simulated workload on a real TaskManager and show it live: workers"
            " (base/burst), queue depths, throughput, p95/p99 latency, failures and"
            " retries, then a summary. Each task is a 'model inference' on a worker's"
            f" model handle (loading one takes {d.create_cost * 1000:g} ms). The load"
            " steps up: --rate for the first 35% of the run, --burst-rate until 65%,"
            " then --rate again; burst workers are added and retired as it goes. A few"
            " tasks crash their model: the worker gets a fresh one and the task is"
            " retried. On a terminal the display is redrawn in place; when output is"
            " piped it prints one line a second."
        ),
        epilog="example: python -m tasker_aio demo --duration 20 --burst-rate 120",
    )
    demo.set_defaults(error=demo.error)
    positive, at_least_0, fraction = _number(float, 1e-3), _number(float, 0.0), _number(float, 0, 1)
    count = _number(int, 1)
    demo.add_argument(
        "--duration", type=positive, default=d.duration, metavar="SECONDS",
        help="seconds of load before the graceful stop (default: %(default)g)",
    )  # fmt: skip
    demo.add_argument(
        "--rate", type=at_least_0, default=d.rate, metavar="PER_S",
        help="base arrivals per second, before and after the burst (default: %(default)g)",
    )  # fmt: skip
    demo.add_argument(
        "--burst-rate", type=at_least_0, default=d.burst_rate, metavar="PER_S",
        help="peak arrivals per second during the burst (default: %(default)g)",
    )  # fmt: skip
    demo.add_argument(
        "--workers", type=count, default=d.workers, metavar="N",
        help="base workers, always running (default: %(default)d)",
    )  # fmt: skip
    demo.add_argument(
        "--max-workers", type=count, default=d.max_workers, metavar="N",
        help="base + burst workers at most (default: %(default)d)",
    )  # fmt: skip
    demo.add_argument(
        "--failure-rate", type=fraction, default=d.failure_rate, metavar="P",
        help="chance that a task run crashes its model, 0..1 (default: %(default)g)",
    )  # fmt: skip
    demo.add_argument(
        "--seed", type=int, default=None,
        help="random seed for arrivals, latencies and crashes (default: random)",
    )  # fmt: skip
    demo.add_argument(
        "--no-color", action="store_true",
        help="no colors on a terminal (also: NO_COLOR set); piped output never has any",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``python -m tasker_aio [demo ...]``; return the exit status."""
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return 0
    if args.max_workers < args.workers:
        args.error(f"--max-workers ({args.max_workers}) must be >= --workers ({args.workers})")
    params = DemoParams(
        duration=args.duration,
        rate=args.rate,
        burst_rate=args.burst_rate,
        workers=args.workers,
        max_workers=args.max_workers,
        failure_rate=args.failure_rate,
        seed=args.seed,
    )
    live = out.isatty() and os.environ.get("TERM") != "dumb"
    color = live and not args.no_color and "NO_COLOR" not in os.environ
    screen = Screen(out, params, live=live, color=color)
    screen.header()
    try:
        result = asyncio.run(simulate(params, screen.update))
    except KeyboardInterrupt:
        out.write("interrupted\n")
        return 130
    finally:
        screen.close()
    screen.summary(result)
    return 0
