"""Instructions per task under cachegrind: ``python -m benchmarks.instructions``.

Wall-clock numbers on a shared machine move by a few percent between runs; counted
instructions barely move, so these are the numbers to quote before and after an
engine change. Each (system, style, loop) runs a workload (by default the trivial task
at 8 workers, 64 closed-loop callers; ``--workload`` picks another) in a fresh Python
under ``valgrind --tool=cachegrind`` at two task counts; the difference divided by the
difference in tasks is the cost of one task, with start-up, imports and teardown
cancelled out.

Under valgrind the code runs about 50x slower while the clock does not, so anything
timed fires far more often than natively: tasker_aio's fairness yield (after 1 ms of
back-to-back work shared among the workers) would fire on nearly every task, adding
3-5k instructions a task that depend on how fast valgrind ran that day. The children
stretch that budget (see ``benchmarks._private``) so the counts repeat. Natively, with
1,000 busy workers, the yield fires on about every other task too (once a turn's 1 ms is
spent, each worker the turn wakes runs a task or two and yields; there is one yield per
10 tasks with 64): a cost these counts leave out. ``--timed-yields`` leaves the budget
alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from ._common import Case, Workload, loop_factories, run_on, workloads
from ._private import stretch_turn_budget
from ._report import environment, table
from ._systems import raw_closed, raw_gather, tasker_queue_task_closed, tasker_submit_gather

__all__ = ["InstructionRow", "main", "measure"]

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent

_RUNNERS = {
    ("tasker", "closed"): tasker_queue_task_closed,
    ("tasker", "gather"): tasker_submit_gather,
    ("raw", "closed"): raw_closed,
    ("raw", "gather"): raw_gather,
}
_LABELS = {
    ("tasker", "closed"): "tasker await queue_task, closed-loop callers",
    ("tasker", "gather"): "tasker submit + gather",
    ("raw", "closed"): "raw floor, closed-loop callers",
    ("raw", "gather"): "raw floor, submit all + gather",
}
_WORKLOADS = {w.key: w for w in workloads()}
DEFAULT_WORKLOAD = "trivial@8"
_I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


@dataclass(frozen=True)
class InstructionRow:
    """Instructions one task costs in one system, style and loop."""

    workload: str
    loop: str
    system: str  # tasker or raw
    style: str  # closed or gather
    label: str
    counts: tuple[int, int]  # the two task counts run
    instructions: tuple[int, int]  # total instructions of each run
    per_task: float


_STRETCHED_BUDGET = 1e3  # seconds of back-to-back work before a fairness yield


def _child(
    workload: Workload, system: str, style: str, loop: str, n: int, timed_yields: bool
) -> None:
    """Run ``n`` tasks of ``workload`` once: what valgrind counts."""
    if not timed_yields:
        stretch_turn_budget(_STRETCHED_BUDGET)
    notes: list[str] = []
    factory = loop_factories(notes, use_uvloop=loop == "uvloop")[loop]
    case = Case(workload.fn, n, workload.concurrency, workload.callers)
    run_on(factory, partial(_RUNNERS[system, style], case))


def _count(
    valgrind: str,
    workload: Workload,
    system: str,
    style: str,
    loop: str,
    n: int,
    timed_yields: bool,
) -> int:
    """Instructions of one child run under cachegrind (no cache simulation: faster)."""
    command = [
        valgrind,
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--workload",
        workload.key,
        "--child",
        system,
        style,
        loop,
        str(n),
        *(["--timed-yields"] if timed_yields else []),
    ]
    # A fixed hash seed: dict and set layouts, and so the instructions, repeat exactly.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    found = _I_REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({command!r}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(
    workload: Workload,
    loops: Sequence[str],
    counts: tuple[int, int],
    jobs: int,
    valgrind: str,
    timed_yields: bool = False,
) -> list[InstructionRow]:
    """Every (loop, style, system) at both task counts, ``jobs`` valgrind runs at a time."""
    cells = [(loop, style, system) for loop in loops for style in ("closed", "gather")
             for system in ("tasker", "raw")]  # fmt: skip
    runs = [(cell, n) for cell in cells for n in counts]

    def count(run: tuple[tuple[str, str, str], int]) -> int:
        (loop, style, system), n = run
        return _count(valgrind, workload, system, style, loop, n, timed_yields)

    # Each run is one single-threaded valgrind process: run as many as there are cores.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        totals = dict(zip(runs, pool.map(count, runs), strict=True))
    rows = []
    for loop, style, system in cells:
        low, high = (
            totals[(loop, style, system), counts[0]],
            totals[(loop, style, system), counts[1]],
        )
        rows.append(
            InstructionRow(
                workload=workload.key,
                loop=loop,
                system=system,
                style=style,
                label=_LABELS[system, style],
                counts=counts,
                instructions=(low, high),
                per_task=(high - low) / (counts[1] - counts[0]),
            )
        )
    return rows


def render(rows: Sequence[InstructionRow]) -> str:
    """One line per loop and style: tasker, the floor, their ratio and difference."""
    by_key = {(r.loop, r.style, r.system): r for r in rows}
    body = []
    for loop, style, system in by_key:
        if system != "tasker":
            continue
        mine, floor = by_key[loop, style, "tasker"], by_key[loop, style, "raw"]
        body.append(
            [
                f"{loop} / {style}",
                round(mine.per_task),
                round(floor.per_task),
                mine.per_task / floor.per_task,
                round(mine.per_task - floor.per_task),
            ]
        )
    low, high = rows[0].counts
    workload = _WORKLOADS[rows[0].workload]
    return (
        f"== Instructions per task: {workload.label}, {workload.concurrency:,} workers,"
        f" {workload.callers:,} closed-loop callers (cachegrind; {high:,} - {low:,} tasks) ==\n"
        + table(["loop / style", "tasker", "raw floor", "x floor", "tasker - floor"], body)
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions",
        description="Instructions per task under cachegrind, tasker_aio and the floor.",
    )
    parser.add_argument(
        "--counts",
        type=int,
        nargs=2,
        default=(2_000, 12_000),
        metavar=("LOW", "HIGH"),
        help="the two task counts whose difference is measured (default 2000 12000)",
    )
    parser.add_argument(
        "--workload",
        choices=sorted(_WORKLOADS),
        default=DEFAULT_WORKLOAD,
        help=f"task body @ concurrency (default {DEFAULT_WORKLOAD}; the I/O bodies wait on"
        " timers, whose number per loop turn follows valgrind's speed: less exact)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="the default loop only")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="valgrind runs at a time"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file (default benchmarks/results/instructions.json; with --workload,"
        " instructions_<body>_<concurrency>.json)",
    )
    parser.add_argument(
        "--timed-yields",
        action="store_true",
        help="leave tasker_aio's 1 ms fairness budget alone (counts then vary with speed)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        system, style, loop, n = args.child
        _child(_WORKLOADS[args.workload], system, style, loop, int(n), args.timed_yields)
        return 0
    low, high = args.counts
    if not 0 < low < high:
        raise SystemExit("--counts needs 0 < LOW < HIGH")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    notes: list[str] = []
    loops = list(loop_factories(notes, use_uvloop=not args.no_uvloop))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    started = time.perf_counter()
    workload = _WORKLOADS[args.workload]
    rows = measure(workload, loops, (low, high), max(args.jobs, 1), valgrind, args.timed_yields)
    print(render(rows))
    print(f"total time: {time.perf_counter() - started:.0f} s")
    output = args.output or RESULTS / (
        "instructions.json"
        if args.workload == DEFAULT_WORKLOAD
        else f"instructions_{args.workload.replace('@', '_')}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps({"environment": environment(), "rows": [asdict(r) for r in rows]}, indent=2)
        + "\n"
    )
    print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
