"""The demo's command line: ``python -m tasker_aio demo``."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .screen import Screen
from .simulation import DemoParams, Simulation

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
            " piped it prints one line a second: workers as base+burst/most, queued"
            " tasks as main+priority, and the 95th percentiles of execution and wait"
            " times. Ctrl-C stops the run early and prints the summary so far."
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
    simulation = Simulation(params, screen.update)
    screen.header()
    try:
        result = asyncio.run(simulation.run())
    except KeyboardInterrupt:  # Ctrl-C: asyncio.run cancelled the run, which killed the manager
        screen.close()
        out.write("interrupted\n")
        screen.summary(simulation.summary(interrupted=True))
        return 130
    finally:
        screen.close()  # give the cursor back whatever happened
    screen.summary(result)
    return 0
