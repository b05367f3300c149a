"""Plain-text tables, the issue's targets checked against the numbers, and the JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._common import Workload
from ._memory import MemoryRow
from ._metrics_cost import MetricsRow
from ._profile import ProfileResult
from ._scaling import CurvePoint, LagRow
from ._targets import OBSERVED, Check, check_targets, growth, is_default
from ._throughput import ThroughputRow
from .load_step import Sample, thin
from .load_step import render as render_load_step

__all__ = ["Report", "environment", "table"]

_GROUP_ORDER = {"tasker": 0, "floor": 1, "peer": 2, "reference": 3}


def _table_order(row: ThroughputRow) -> tuple[str, int, float]:
    """Closed-loop rows first; tasker, floor, then peers and references fastest first."""
    cost = row.us_per_task if row.group in ("peer", "reference") else 0.0
    return (row.style, _GROUP_ORDER[row.group], cost)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned first column and right-aligned others, two spaces apart."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.strip()


def environment() -> dict[str, Any]:
    """Machine, Python, loop and package versions, and the commits measured.

    ``engine`` is the last commit that changed tasker_aio/: what a before/after
    comparison of the engine should quote (the benchmarks may have moved on since).
    """
    from ._systems import peer_versions

    try:
        commit = _git("rev-parse", "--short", "HEAD")
        engine = _git("log", "-1", "--format=%h", "--", "tasker_aio")
        if _git("status", "--porcelain", "--", "tasker_aio"):
            engine += " + uncommitted changes in tasker_aio/"
    except (OSError, subprocess.CalledProcessError):
        commit = engine = "unknown"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": peer_versions(),
        "commit": commit,
        "engine": engine,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
    }


@dataclass
class Report:
    """Everything one run measured; printed as tables and written as JSON."""

    mode: str
    reps: int
    env: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    workloads: list[Workload] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    workers_curve: list[CurvePoint] = field(default_factory=list)
    queued_curve: list[CurvePoint] = field(default_factory=list)
    lag: list[LagRow] = field(default_factory=list)
    metrics_cost: list[MetricsRow] = field(default_factory=list)
    profile: list[ProfileResult] = field(default_factory=list)
    load_step: list[Sample] = field(default_factory=list)
    seconds: float = 0.0

    # ---------------------------------------------------------------- text

    def render(self) -> str:
        env = self.env
        versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        parts = [
            f"tasker_aio benchmarks ({self.mode} run, commit {env['commit']}, tasker_aio/ at"
            f" {env['engine']}, {env['date']})",
            f"{env['python']} on {env['platform']}, {env['cpus']} CPUs",
            f"versions: {versions}",
        ]
        parts += [f"note: {note}" for note in self.notes]
        if self.throughput:
            parts.append(self._render_throughput())
        if self.memory:
            parts.append(self._render_memory())
        for curve, title in ((self.workers_curve, "workers"), (self.queued_curve, "queued tasks")):
            if curve:
                parts.append(self._render_curve(curve, title))
        if self.lag:
            parts.append(self._render_lag())
        if self.metrics_cost:
            parts.append(self._render_metrics())
        for result in self.profile:
            parts.append(self._render_profile(result))
        if self.load_step:
            parts.append(
                "== Load step: workers over time (python -m benchmarks.load_step) ==\n"
                + render_load_step(thin(self.load_step, 0.25))
            )
        checks = self.checks()
        if checks:
            parts.append(self._render_checks(checks))
        parts.append(f"total time: {self.seconds:.0f} s")
        return "\n\n".join(parts)

    def _render_throughput(self) -> str:
        out = []
        loops = list(dict.fromkeys(row.loop for row in self.throughput))
        for workload in self.workloads:
            rows = [r for r in self.throughput if r.workload == workload.key]
            if not rows:
                continue
            by_loop = {(r.loop, r.system): r for r in rows}
            head_rows = sorted((r for r in rows if r.loop == loops[0]), key=_table_order)
            systems = [r.system for r in head_rows]
            head = head_rows[0]
            headers = ["system", "style"]
            for loop in loops:
                headers += [f"{loop} us", "min", "x floor", "x by min", "x cpu"]
            body = []
            for system in systems:
                row = by_loop[loops[0], system]
                label = row.label if row.n == head.n else f"{row.label} ({row.n:,} tasks)"
                cells: list[object] = [label, row.style]
                for loop in loops:
                    r = by_loop.get((loop, system))
                    if r is None:
                        cells += [None] * 5
                    else:
                        cells += [
                            r.us_per_task,
                            r.us_min,
                            r.ratio_to_floor,
                            r.ratio_of_minima,
                            r.cpu_ratio_to_floor,
                        ]
                body.append(cells)
            title = (
                f"== Throughput: {workload.label} | {head.concurrency:,} workers/limit,"
                f" {head.submitters:,} closed-loop callers | {head.n:,} tasks,"
                f" median of {self.reps} =="
            )
            out.append(f"{title}\n{table(headers, body)}")
        out.append(
            "us: median per task; min: the fastest repetition. x floor: median over the raw"
            " floor's median, same style (closed: callers awaiting one result each; gather:"
            " all submitted, then gathered), same loop, same workload, same run. x by min:"
            " the same ratio of the fastest repetitions, less sensitive to noise from other"
            " processes. x cpu: the same ratio of this process's CPU time (medians), which"
            " leaves out time other processes took and time the loop sat idle on timers:"
            " the steadier number on a shared machine (the targets table judges it as"
            " 'cpu met'). reference rows hand nothing over (the caller runs the task itself)."
        )
        return "\n\n".join(out)

    def _render_memory(self) -> str:
        n = self.memory[0].n
        return (
            f"== Memory per queued-but-not-started task ({n:,} queued, tracemalloc) ==\n"
            + table(
                ["system", "peak B/task", "retained B/task", "x floor"],
                [
                    [r.label, r.peak_bytes_per_task, r.retained_bytes_per_task, r.ratio_to_floor]
                    for r in self.memory
                ],
            )
        )

    @staticmethod
    def _render_curve(points: list[CurvePoint], title: str) -> str:
        xs = list(dict.fromkeys(p.x for p in points))
        loops = list(dict.fromkeys(p.loop for p in points))
        systems = list(dict.fromkeys(p.system for p in points))
        at = {(p.loop, p.system, p.x): p for p in points}
        rows: list[list[object]] = []
        for loop in loops:
            for system in systems:
                mine = [at[loop, system, x] for x in xs]
                grows, grows_min = growth(points, system, loop)
                floor, floor_min = growth(points, mine[0].floor, loop)
                grows_cpu = growth(points, system, loop, cpu=True)[0]
                floor_cpu = growth(points, mine[0].floor, loop, cpu=True)[0]
                rows.append(
                    [
                        f"{loop} / {system}",
                        *[p.us_per_task for p in mine],
                        grows,
                        grows_min,
                        grows / floor,
                        grows_min / floor_min,
                        grows_cpu / floor_cpu,
                    ]
                )
                rows.append(
                    ["  % of that time in gc", *[p.gc_share * 100 for p in mine], *[None] * 5]
                )
        first = {x: at[loops[0], systems[0], x] for x in xs}
        # Timed tasks per measurement and repetitions, at each point of the curve.
        detail = "; ".join(f"{x:,}: {first[x].n:,} x{first[x].reps}" for x in xs)
        return (
            f"== Scaling: median us/task as {title} grow (trivial task; timed tasks x"
            f" repetitions at each point: {detail}) ==\n"
            + table(
                [
                    "loop / system",
                    *[f"{x:,}" for x in xs],
                    "growth",
                    "by min",
                    "/ floor's",
                    "by min",
                    "cpu",
                ],
                rows,
            )
            + (
                "\ngrowth: cost at the right end over the left; / floor's: that growth over the"
                " raw floor's growth (1.00 = tracks the floor); cpu: the same from CPU-time"
                " medians."
            )
        )

    def _render_lag(self) -> str:
        n = self.lag[0].n
        return (
            f"== Event-loop lag: a 1 ms heartbeat while {n:,} trivial tasks drain"
            f" (8 workers, median of {self.lag[0].reps}) ==\n"
            + table(
                ["loop / system", "max gap ms", "worst ms", "p99 gap ms", "beats", "drain ms"],
                [
                    [
                        f"{r.loop} / {r.system}",
                        r.max_gap_ms,
                        r.worst_gap_ms,
                        r.p99_gap_ms,
                        r.beats,
                        r.drain_ms,
                    ]
                    for r in self.lag
                ],
            )
        )

    def _render_metrics(self) -> str:
        n = self.metrics_cost[0].n
        off = {(r.loop, r.style): r for r in self.metrics_cost if "hooks off" in r.system}
        default = {(r.loop, r.style): r for r in self.metrics_cost if is_default(r)}
        rows = []
        for r in self.metrics_cost:
            # What a collector adds over no metrics at all (the hooks-off row), and what
            # observing the default collector adds over it (benchmarks/_observed.py).
            zero = off[r.loop, r.style]
            collector = "collector" in r.system
            base = default[r.loop, r.style] if OBSERVED in r.system else None
            rows.append(
                [
                    f"{r.loop} / {r.style} / {r.system}",
                    r.us_per_task,
                    r.ratio_to_floor,
                    r.us_per_task - zero.us_per_task if collector else None,
                    r.cpu_us_per_task,
                    r.cpu_us_per_task - zero.cpu_us_per_task if collector else None,
                    r.us_per_task - base.us_per_task if base else None,
                    r.cpu_us_per_task - base.cpu_us_per_task if base else None,
                ]
            )
        return (
            f"== Metrics cost: trivial tasks, 8 workers, {n:,} tasks, median of"
            f" {len(self.metrics_cost[0].samples_us)} ==\n"
            + table(
                [
                    "loop / style / system",
                    "us/task",
                    "x floor",
                    "collector us/task",
                    "cpu us/task",
                    "collector cpu us",
                    "over default",
                    "over default cpu",
                ],
                rows,
            )
        )

    @staticmethod
    def _render_profile(result: ProfileResult) -> str:
        head = (
            f"== cProfile: {result.scenario}, {result.n:,} tasks (profiled us, inflated) ==\n"
            f"profiled total {result.total_us_per_task:.2f} us/task"
            f" (raw floor profiled alike: {result.raw_floor_us_per_task:.2f});"
            f" own time in tasker_aio functions {result.tasker_own_us_per_task:.2f},"
            f" in what they call directly {result.direct_callee_us_per_task:.2f}"
        )
        functions = table(
            ["tasker_aio function", "calls/task", "own us/task", "cum us/task"],
            [
                [e.function, e.calls_per_task, e.own_us_per_task, e.cumulative_us_per_task]
                for e in result.tasker_functions
            ],
        )
        callees = table(
            ["called directly from tasker_aio", "calls/task", "own us/task", "cum us/task"],
            [
                [e.function, e.calls_per_task, e.own_us_per_task, e.cumulative_us_per_task]
                for e in result.callees
            ],
        )
        return f"{head}\n{functions}\n\n{callees}"

    @staticmethod
    def _render_checks(checks: list[Check]) -> str:
        met = sum(check.met for check in checks)
        judged_cpu = [check.cpu_met for check in checks if check.cpu_met is not None]

        def verdict(ok: bool | None) -> str:
            return "-" if ok is None else "ok" if ok else "MISS"

        rows = [
            [
                c.target,
                c.wall.median,
                c.wall.by_min,
                verdict(c.met),
                None if c.cpu is None else c.cpu.median,
                None if c.cpu is None else c.cpu.by_min,
                verdict(c.cpu_met),
                c.limit,
                c.detail,
            ]
            for c in checks
        ]
        return (
            f"== Targets of the performance issue: {met} of {len(checks)} met on the wall"
            f" clock; {sum(judged_cpu)} of {len(judged_cpu)} on CPU time"
            " (met = median and by-min both) ==\n"
            + table(
                [
                    "target",
                    "median",
                    "by min",
                    "met",
                    "cpu med",
                    "cpu min",
                    "cpu met",
                    "limit",
                    "numbers (wall medians)",
                ],
                rows,
            )
            + "\nmet: judged on the wall clock, as the issue states its targets. cpu: the same"
            " judged on this process's CPU time, which other processes disturb far less (and"
            " which leaves out the loop's idle waits on timers)."
        )

    # -------------------------------------------------------------- checks

    def checks(self) -> list[Check]:
        """The issue's targets, each with what this run measured."""
        return check_targets(
            self.throughput,
            self.workers_curve,
            self.queued_curve,
            self.memory,
            self.lag,
            self.metrics_cost,
        )

    # ---------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "reps": self.reps,
            "environment": self.env,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
            "workloads": [
                {
                    "key": w.key,
                    "body": w.body,
                    "label": w.label,
                    "concurrency": w.concurrency,
                    "callers": w.callers,
                    "n_full": w.n_full,
                    "n_quick": w.n_quick,
                }
                for w in self.workloads
            ],
            "throughput": [asdict(r) for r in self.throughput],
            "memory": [asdict(r) for r in self.memory],
            "scaling": {
                "workers": [asdict(p) for p in self.workers_curve],
                "queued": [asdict(p) for p in self.queued_curve],
            },
            "loop_lag": [asdict(r) for r in self.lag],
            "metrics_cost": [asdict(r) for r in self.metrics_cost],
            "profile": [asdict(r) for r in self.profile],
            "load_step": [asdict(s) for s in self.load_step],
            "targets": [asdict(check) for check in self.checks()],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
