"""Plain-text tables, the issue's targets checked against the numbers, and the JSON."""

from __future__ import annotations

import datetime
import json
import math
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
from ._throughput import ThroughputRow

__all__ = ["Check", "Report", "environment", "table"]

# The targets of the benchmark issue.
MAX_RATIO_TO_FLOOR = 1.3
MIN_SPEEDUP_OVER_PEERS = 1.5
MAX_MEMORY_RATIO = 2.0
MAX_CURVE_SPREAD = 1.2
MAX_LAG_MS = 20.0

_CLOSED = "tasker.queue_task.closed"
_GATHER = "tasker.queue_task_async.gather"


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


def _spread(curve: list[CurvePoint], system: str) -> float:
    """Largest over smallest per-task cost of ``system`` along ``curve``."""
    values = [p.us_per_task for p in curve if p.system == system]
    return max(values) / min(values)


def environment() -> dict[str, Any]:
    """Machine, Python, loop and package versions, and the commit measured."""
    from ._systems import peer_versions

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent.parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tasker_aio"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent.parent,
        ).stdout.strip()
        if dirty:
            commit += " + uncommitted changes in tasker_aio/"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": peer_versions(),
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
    }


@dataclass(frozen=True)
class Check:
    """One target of the benchmark issue and what this run measured for it."""

    target: str
    measured: float  # from medians
    by_min: float | None  # the same from the fastest repetitions, where it applies
    limit: str
    met: bool


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
    seconds: float = 0.0

    # ---------------------------------------------------------------- text

    def render(self) -> str:
        env = self.env
        versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        parts = [
            f"tasker_aio benchmarks ({self.mode} run, commit {env['commit']}, {env['date']})",
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
        checks = self.checks()
        if checks:
            rows = [
                [c.target, c.measured, c.by_min, c.limit, "ok" if c.met else "MISS"] for c in checks
            ]
            parts.append(
                "== Targets of the benchmark issue (met = median and by-min both) ==\n"
                + table(["target", "median", "by min", "limit", "met"], rows)
            )
        parts.append(f"total time: {self.seconds:.0f} s")
        return "\n\n".join(parts)

    def _render_throughput(self) -> str:
        out = []
        loops = list(dict.fromkeys(row.loop for row in self.throughput))
        for workload in self.workloads:
            for loop in loops:
                rows = [r for r in self.throughput if r.loop == loop and r.workload == workload.key]
                if not rows:
                    continue
                first = rows[0]
                order = {"tasker": 0, "floor": 1, "peer": 2}
                rows.sort(key=lambda r: (order[r.group], r.us_per_task if r.group == "peer" else 0))
                title = (
                    f"== Throughput: {workload.label} | {loop} loop | {first.n:,} tasks,"
                    f" {first.concurrency} workers/limit, {first.submitters} closed-loop callers,"
                    f" median of {self.reps} =="
                )
                body = table(
                    ["system", "style", "us/task", "min", "max", "tasks/s", "x floor", "x by min"],
                    [
                        [
                            r.label,
                            r.style,
                            r.us_per_task,
                            r.us_min,
                            r.us_max,
                            round(r.tasks_per_s),
                            r.ratio_to_floor,
                            r.ratio_of_minima,
                        ]
                        for r in rows
                    ],
                )
                out.append(f"{title}\n{body}")
        out.append(
            "x floor: median us/task over the raw floor's median, same style (closed: callers"
            " awaiting one result each; gather: all submitted, then gathered), same loop,"
            " same workload, same run. x by min: the same ratio of the fastest repetitions,"
            " less sensitive to noise from other processes."
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
        systems = list(dict.fromkeys(p.system for p in points))
        rows = []
        for system in systems:
            values = [
                next(p.us_per_task for p in points if p.system == system and p.x == x) for x in xs
            ]
            ratios = [
                next(p.ratio_to_floor for p in points if p.system == system and p.x == x)
                for x in xs
            ]
            shares = [
                next(p.gc_share for p in points if p.system == system and p.x == x) * 100
                for x in xs
            ]
            rows.append([system, *values, max(values) / min(values), max(ratios)])
            rows.append(["  % of that time in gc", *shares, "", ""])
        first = {x: next(p for p in points if p.x == x) for x in xs}
        detail = ", ".join(dict.fromkeys(f"{first[x].n:,} tasks x{first[x].reps}" for x in xs))
        return f"== Scaling: us/task as {title} grow (asyncio loop; {detail}) ==\n" + table(
            ["system", *[f"{x:,}" for x in xs], "max/min", "max x floor"], rows
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
        off = {(r.loop, r.style): r.us_per_task for r in self.metrics_cost if "off" in r.system}
        rows = []
        for r in self.metrics_cost:
            # What a collector adds over no metrics at all (the hooks-off row).
            cost = r.us_per_task - off[r.loop, r.style] if "collector" in r.system else math.nan
            rows.append(
                [f"{r.loop} / {r.style} / {r.system}", r.us_per_task, r.ratio_to_floor, cost]
            )
        return (
            f"== Metrics cost: trivial tasks, 8 workers, {n:,} tasks, median of"
            f" {len(self.metrics_cost[0].samples_us)} ==\n"
            + table(["loop / style / system", "us/task", "x floor", "collector us/task"], rows)
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

    # -------------------------------------------------------------- checks

    def checks(self) -> list[Check]:
        """The issue's "done when" targets, each with what this run measured.

        A throughput target counts as met only when both the median ratio and the
        ratio of the fastest repetitions meet it, so a noisy floor cannot fake a pass.
        """
        checks: list[Check] = []
        by_key = {(r.loop, r.workload, r.system): r for r in self.throughput}
        for (loop, workload, system), row in by_key.items():
            if system not in (_CLOSED, _GATHER):
                continue
            checks.append(
                Check(
                    f"{loop} {workload}: {system} / raw floor",
                    row.ratio_to_floor,
                    row.ratio_of_minima,
                    f"<= {MAX_RATIO_TO_FLOOR}",
                    max(row.ratio_to_floor, row.ratio_of_minima) <= MAX_RATIO_TO_FLOOR,
                )
            )
            peers = [
                r
                for (lp, wl, _), r in by_key.items()
                if lp == loop and wl == workload and r.group == "peer"
            ]
            if system == _GATHER and peers:
                fastest = min(peers, key=lambda r: r.us_per_task)
                speedup = fastest.us_per_task / row.us_per_task
                by_min = min(p.us_min for p in peers) / row.us_min
                checks.append(
                    Check(
                        f"{loop} {workload}: fastest peer ({fastest.label}) / tasker",
                        speedup,
                        by_min,
                        f">= {MIN_SPEEDUP_OVER_PEERS}",
                        min(speedup, by_min) >= MIN_SPEEDUP_OVER_PEERS,
                    )
                )
        for memory in self.memory:
            if memory.system == "tasker.submit":
                checks.append(
                    Check(
                        "memory per queued task: tasker submit / raw floor",
                        memory.ratio_to_floor,
                        None,
                        f"<= {MAX_MEMORY_RATIO}",
                        memory.ratio_to_floor <= MAX_MEMORY_RATIO,
                    )
                )
        for name, curve in (
            ("workers 1..64", self.workers_curve),
            ("queued tasks", self.queued_curve),
        ):
            for system in dict.fromkeys(p.system for p in curve):
                if not system.startswith("tasker"):
                    continue
                spread = _spread(curve, system)
                floor = next(p.floor for p in curve if p.system == system)
                floor_spread = _spread(curve, floor)
                checks.append(
                    Check(
                        f"flat over {name}: {system} max/min (its floor: {floor_spread:.2f})",
                        spread,
                        None,
                        f"<= {MAX_CURVE_SPREAD}",
                        spread <= MAX_CURVE_SPREAD,
                    )
                )
        for lag in self.lag:
            if lag.system.startswith("tasker"):
                checks.append(
                    Check(
                        f"{lag.loop}: max loop lag ms, {lag.n:,}-task flood (worst of {lag.reps})",
                        lag.worst_gap_ms,
                        None,
                        f"< {MAX_LAG_MS}",
                        lag.worst_gap_ms < MAX_LAG_MS,
                    )
                )
        return checks

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
                    "label": w.label,
                    "concurrency": w.concurrency,
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
            "targets": [asdict(check) for check in self.checks()],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
