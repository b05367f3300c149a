"""``python -m benchmarks [--quick] [--only SECTION ...] [--plots]``: run, print, write JSON."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from . import load_step, plots
from ._common import loop_factories, progress, run_on, workloads
from ._memory import run_memory
from ._metrics_cost import run_metrics_cost
from ._profile import run_profile
from ._report import Report, environment
from ._scaling import run_depth_curve, run_lag, run_worker_curve
from ._systems import systems
from ._throughput import run_throughput

__all__ = ["main"]

SECTIONS = (
    "throughput",
    "memory",
    "workers",
    "queued",
    "lag",
    "metrics",
    "profile",
    "loadstep",
)
RESULTS = Path(__file__).parent / "results"
_LOAD_STEP_SAMPLE = 0.05  # seconds between samples: every change of workers shows


@dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    reps: int  # interleaved repetitions: throughput and metrics cost
    warmup: bool  # one untimed small pass of every throughput combination first
    memory_n: int
    memory_reps: int
    worker_counts: tuple[int, ...]
    workers_n: int
    workers_reps: int
    depths: tuple[int, ...]
    depth_budget: int  # tasks per system and depth, at most 15 repetitions
    lag_n: int
    lag_reps: int
    metrics_n: int
    profile_n: int
    load_step: bool  # part of the run by default (a quick run draws it for --plots only)


FULL = Plan(
    reps=5,
    warmup=True,
    memory_n=20_000,
    memory_reps=2,
    worker_counts=(1, 8, 64),
    workers_n=30_000,
    workers_reps=3,
    depths=(1_000, 10_000, 100_000, 1_000_000),
    depth_budget=200_000,
    lag_n=100_000,
    lag_reps=3,
    metrics_n=30_000,
    profile_n=50_000,
    load_step=True,
)
QUICK = Plan(
    reps=2,
    warmup=False,
    memory_n=5_000,
    memory_reps=1,
    worker_counts=(1, 8, 64),
    workers_n=3_000,
    workers_reps=3,
    depths=(1_000, 10_000, 100_000),
    depth_budget=30_000,
    lag_n=50_000,
    lag_reps=1,
    metrics_n=3_000,
    profile_n=5_000,
    load_step=False,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="tasker_aio against the raw asyncio floor and its peers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of about 30 s: fewer tasks and reps"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 5, quick 2)")
    parser.add_argument(
        "--tasks",
        type=int,
        help="tasks per throughput measurement, for every workload (default 800-10,000)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="the default loop only")
    parser.add_argument(
        "--plots",
        action="store_true",
        help="also draw the run as PNGs in benchmarks/results/ (needs matplotlib)",
    )
    parser.add_argument(
        "--docs-images", action="store_true", help="with --plots, also write them to docs/images/"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file (default benchmarks/results/latest.json; quick.json for --quick,"
        " partial.json with --only)",
    )
    return parser


def _default_output(quick: bool, only: bool) -> str:
    """latest.json for a full run of every section; a partial or quick run goes aside."""
    if only:
        return "partial.json"
    return "quick.json" if quick else "latest.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    reps = args.reps or plan.reps
    if reps < 1:
        raise SystemExit("--reps must be at least 1")
    if args.tasks is not None and args.tasks < 1:
        raise SystemExit("--tasks must be at least 1")
    sections = set(args.only or SECTIONS)
    if not (args.only or plan.load_step or args.plots):
        sections.discard("loadstep")  # 7 s of a 30 s quick run, for a picture
    if args.docs_images and not args.plots:
        raise SystemExit("--docs-images draws the plots: add --plots")
    if args.plots:
        plots.require_matplotlib()  # now, not after a five-minute run
    started = time.perf_counter()

    report = Report(mode="quick" if args.quick else "full", reps=reps, env=environment())
    loops = loop_factories(report.notes, use_uvloop=not args.no_uvloop)
    default_loop = loops["asyncio"]
    report.workloads = workloads()
    if args.tasks is not None:
        report.workloads = [
            replace(w, n_full=args.tasks, n_quick=args.tasks) for w in report.workloads
        ]

    if "throughput" in sections:
        found = systems(report.notes)
        report.throughput = run_throughput(
            loops, report.workloads, found, reps, args.quick, report.notes, warmup=plan.warmup
        )
    if "memory" in sections:
        report.memory = run_memory(default_loop, plan.memory_n, plan.memory_reps)
    if "workers" in sections:
        report.workers_curve = run_worker_curve(
            loops, list(plan.worker_counts), plan.workers_n, plan.workers_reps
        )
    if "queued" in sections:
        report.queued_curve = run_depth_curve(loops, list(plan.depths), plan.depth_budget)
    if "lag" in sections:
        report.lag = run_lag(loops, plan.lag_n, plan.lag_reps)
    if "metrics" in sections:
        report.metrics_cost = run_metrics_cost(loops, plan.metrics_n, reps, report.notes)
    if "profile" in sections:
        report.profile = run_profile(default_loop, plan.profile_n)
    if "loadstep" in sections:
        progress("load step: about 7 seconds")
        report.load_step = run_on(default_loop, partial(load_step.run, _LOAD_STEP_SAMPLE))

    report.seconds = time.perf_counter() - started
    output = args.output or RESULTS / _default_output(args.quick, only=bool(args.only))
    report.write_json(output)
    print(report.render())
    progress(f"wrote {output}")
    if args.plots:
        for path in plots.write_all(report.to_json(), plots.folders(args.docs_images)):
            progress(f"wrote {path}")
    return 0
