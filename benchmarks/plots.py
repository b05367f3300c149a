"""Pictures of a benchmark run (PNG, matplotlib): ``python -m benchmarks.plots [JSON]``.

Opt-in: matplotlib is not a dependency (``pip install matplotlib`` or
``pip install --group plots``). ``python -m benchmarks --plots`` draws them after a run;
this module redraws them from a saved run (default ``benchmarks/results/latest.json``).
Every figure goes to ``benchmarks/results/``, and to ``docs/images/`` with
``--docs-images``:

- ``throughput_<body>.png``: per-task cost against concurrency for each task body,
  tasker_aio against the raw floor (with a band up to 1.3x of it) and the peers, one
  panel per loop and submission style;
- ``scaling.png``: how per-task cost grows with workers and with queued tasks, tasker_aio
  against the floor;
- ``load_step.png``: workers, rates and queue over time in the load-step run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._common import short_count
from .load_step import PHASES, Sample

__all__ = [
    "folders",
    "require_matplotlib",
    "samples_json",
    "write_all",
    "write_load_step",
    "write_scaling",
    "write_throughput",
]

RESULTS = Path(__file__).parent / "results"
DOCS_IMAGES = Path(__file__).parent.parent / "docs" / "images"
_DPI = 120

# One colour per system across every figure; tasker_aio and the floor stand out.
_TASKER = "#1f5fbf"
_FLOOR = "#111111"
_PEER_COLOURS = {
    "semaphore": "#d95f02",
    "asyncio-pool": "#1b9e77",
    "aiojobs": "#7570b3",
    "aiometer": "#e7298a",
    "anyio": "#a6761d",
}
_REFERENCE = "#999999"
# The tasker_aio form drawn for each style (the others are in the tables).
_TASKER_OF_STYLE = {"closed": "tasker.queue_task.closed", "gather": "tasker.submit.gather"}
_STYLE_TITLES = {
    "closed": "closed loop: callers await each result",
    "gather": "submit all, then gather",
}
_FLOOR_BAND = 1.3  # the "within 1.3x of the raw floor"


def require_matplotlib() -> None:
    """Exit with the install command if matplotlib is missing: before a long run."""
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit(
            "plots need matplotlib: pip install matplotlib (or pip install --group plots)"
        )


def folders(docs_images: bool) -> list[Path]:
    """Where the PNGs go: benchmarks/results/, and docs/images/ when asked."""
    return [RESULTS, DOCS_IMAGES] if docs_images else [RESULTS]


def _new_figure(width: float, height: float) -> Any:
    # A bare Figure draws with the Agg canvas: no pyplot, no GUI backend, no global state.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, name: str, targets: Sequence[Path]) -> list[Path]:
    written = []
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        figure.savefig(path, dpi=_DPI)
        written.append(path)
    return written


def _plain_log(axis: Any) -> None:
    """Log scale with ticks at 1, 2, 5 x 10^k written as plain numbers (no 6 x 10^1)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:,g}"))
    axis.set_minor_formatter(NullFormatter())


def _colour(system: str, group: str) -> str:
    if group == "tasker":
        return _TASKER
    if group == "floor":
        return _FLOOR
    if group == "reference":
        return _REFERENCE
    for name, colour in _PEER_COLOURS.items():
        if name in system:
            return colour
    return _REFERENCE


def _legend_below(figure: Any, axes: Sequence[Any], columns: int = 3) -> None:
    """One legend for the figure, each label once, under the panels."""
    seen: dict[str, Any] = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            seen.setdefault(label, handle)
    figure.legend(
        list(seen.values()),
        list(seen),
        loc="outside lower center",
        ncols=columns,
        fontsize="small",
        frameon=False,
    )


# ----------------------------------------------------------------- throughput


def _throughput_figure(run: dict[str, Any], body: str) -> Any:
    rows = [r for r in run["throughput"] if r["body"] == body]
    loops = list(dict.fromkeys(r["loop"] for r in rows))
    concurrencies = sorted({r["concurrency"] for r in rows})
    label = next(w["label"] for w in run["workloads"] if w["body"] == body)
    figure = _new_figure(5.2 * len(loops), 8.4)
    figure.suptitle(
        f"{label}: per-task cost, median of {run['reps']} (lower is better)", fontsize="large"
    )
    grid = figure.subplots(2, len(loops), squeeze=False, sharex=True)
    panels = []
    for row_index, style in enumerate(("closed", "gather")):
        for col_index, loop in enumerate(loops):
            ax = grid[row_index][col_index]
            panels.append(ax)
            mine = [r for r in rows if r["loop"] == loop and r["style"] == style]
            _throughput_panel(ax, mine, style, concurrencies)
            ax.set_title(f"{loop} loop, {_STYLE_TITLES[style]}", fontsize="medium")
            if col_index == 0:
                ax.set_ylabel("us per task (log scale)")
            if row_index == 1:
                ax.set_xlabel("workers / concurrency limit")
    _legend_below(figure, panels)
    return figure


def _throughput_panel(
    ax: Any, rows: list[dict[str, Any]], style: str, concurrencies: list[int]
) -> None:
    positions = {c: i for i, c in enumerate(concurrencies)}
    floors = {r["concurrency"]: r["us_per_task"] for r in rows if r["group"] == "floor"}
    xs = [positions[c] for c in concurrencies if c in floors]
    floor_us = [floors[c] for c in concurrencies if c in floors]
    ax.fill_between(
        xs,
        floor_us,
        [us * _FLOOR_BAND for us in floor_us],
        color=_TASKER,
        alpha=0.08,
        linewidth=0,
        label=f"up to {_FLOOR_BAND}x the raw floor",
    )
    drawn = [r for r in rows if r["group"] != "tasker" or r["system"] == _TASKER_OF_STYLE[style]]
    for system in dict.fromkeys(r["system"] for r in drawn):
        points = sorted((r for r in drawn if r["system"] == system), key=lambda r: r["concurrency"])
        first = points[0]
        group = first["group"]
        ax.plot(
            [positions[r["concurrency"]] for r in points],
            [r["us_per_task"] for r in points],
            marker="o" if group in ("tasker", "floor") else ".",
            markersize=6 if group in ("tasker", "floor") else 5,
            linewidth={"tasker": 2.6, "floor": 1.8}.get(group, 1.1),
            linestyle={"floor": "--", "reference": ":"}.get(group, "-"),
            color=_colour(system, group),
            label=f"tasker_aio: {first['label'].removeprefix('tasker ')}"
            if group == "tasker"
            else first["label"],
            zorder=3 if group == "tasker" else 2,
        )
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_xticks(range(len(concurrencies)), [f"{c:,}" for c in concurrencies])
    ax.set_xlim(-0.2, len(concurrencies) - 0.8)
    ax.grid(True, which="both", axis="y", alpha=0.25)


def write_throughput(run: dict[str, Any], targets: Sequence[Path]) -> list[Path]:
    """One figure per task body: throughput_<body>.png."""
    written = []
    for body in dict.fromkeys(r["body"] for r in run["throughput"]):
        written += _save(_throughput_figure(run, body), f"throughput_{body}.png", targets)
    return written


# ------------------------------------------------------------------- scaling


def _no_ticks() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _growth_panel(ax: Any, points: list[dict[str, Any]], tasker: str, title: str) -> None:
    floor = next(p["floor"] for p in points if p["system"] == tasker)
    for loop, dashes in zip(dict.fromkeys(p["loop"] for p in points), ("-", "--"), strict=False):
        for system, colour, name in ((tasker, _TASKER, "tasker_aio"), (floor, _FLOOR, "raw floor")):
            mine = sorted(
                (p for p in points if p["system"] == system and p["loop"] == loop),
                key=lambda p: p["x"],
            )
            base = mine[0]["us_per_task"]
            ax.plot(
                [p["x"] for p in mine],
                [p["us_per_task"] / base for p in mine],
                marker="o",
                linestyle=dashes,
                color=colour,
                linewidth=2.2 if system == tasker else 1.6,
                label=f"{name}, {loop}",
            )
    ax.set_xscale("log")
    xs = sorted({p["x"] for p in points})
    ax.set_xticks(xs, [short_count(x) for x in xs])
    ax.xaxis.set_minor_locator(_no_ticks())
    ax.set_title(title, fontsize="medium")
    ax.axhline(1.0, color="#cccccc", linewidth=0.8)
    ax.grid(True, which="major", alpha=0.25)


def write_scaling(run: dict[str, Any], targets: Sequence[Path]) -> list[Path]:
    """scaling.png: cost growth as workers and queued tasks grow, against the floor."""
    workers = run["scaling"]["workers"]
    queued = run["scaling"]["queued"]
    panels = [
        (workers, "tasker.queue_task.closed", "workers, closed loop (64 callers)", "workers"),
        (workers, "tasker.submit.gather", "workers, submit all + gather", "workers"),
        (queued, "tasker.submit.gather", "queued tasks (8 workers)", "tasks submitted at once"),
    ]
    panels = [p for p in panels if p[0]]
    if not panels:
        return []
    figure = _new_figure(4.6 * len(panels), 4.6)
    figure.suptitle(
        "Scaling: per-task cost over its cost at the left end (trivial task)",
        fontsize="large",
    )
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (points, tasker, title, xlabel) in zip(axes, panels, strict=True):
        _growth_panel(ax, points, tasker, title)
        ax.set_xlabel(xlabel)
        if max(p["x"] for p in points) >= 100 * min(p["x"] for p in points):
            # The queued curve spans three decades and the floor can grow 10x along it.
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
    axes[0].set_ylabel("growth (1 = no growth)")
    _legend_below(figure, list(axes), columns=4)
    return _save(figure, "scaling.png", targets)


# ----------------------------------------------------------------- load step


def write_load_step(samples: Sequence[Sample], targets: Sequence[Path]) -> list[Path]:
    """load_step.png: workers (base and burst), rates and the queue over time."""
    if not samples:
        return []
    t = [s.t for s in samples]
    figure = _new_figure(8.0, 7.0)
    figure.suptitle(
        "Load step: 20 ms tasks at 25/s, then 150/s for 2 s; 1 base worker, at most 4",
        fontsize="large",
    )
    workers, rates, queue = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.2]}
    )
    base = [s.base for s in samples]
    total = [s.base + s.burst for s in samples]
    workers.fill_between(t, 0, base, step="post", color=_TASKER, alpha=0.75, label="base")
    workers.fill_between(
        t, base, total, step="post", color=_PEER_COLOURS["semaphore"], alpha=0.6, label="burst"
    )
    workers.set_ylabel("workers")
    workers.set_ylim(0, max(max(total), 1) + 0.5)
    workers.legend(loc="upper right", fontsize="small")

    # What was offered, as a step over the phases (the driver's schedule, not a sample).
    edges, offered, clock = [0.0], [], 0.0
    for seconds, rate in PHASES:
        clock += seconds
        edges.append(clock)
        offered.append(rate)
    edges.append(t[-1])
    offered += [0.0, 0.0]
    rates.step(edges, offered, where="post", color="#999999", label="offered")
    rates.plot(t, [s.arrivals for s in samples], color=_FLOOR, label="arrivals/s (1 s window)")
    rates.plot(t, [s.done for s in samples], color=_TASKER, label="completions/s (1 s window)")
    # The collector's first windowed rate divides one arrival by a fraction of a
    # millisecond; the axis stops above the offered load so that spike does not flatten
    # the rest.
    rates.set_ylim(0, max(offered) * 1.3)
    rates.set_ylabel("tasks per second")
    rates.legend(loc="upper right", fontsize="small")

    queue.fill_between(t, 0, [s.queued for s in samples], step="post", color="#777777")
    queue.set_ylabel("queued")
    queue.set_xlabel("seconds since the first arrival")
    for ax in (workers, rates, queue):
        ax.grid(True, alpha=0.25)
    return _save(figure, "load_step.png", targets)


# ---------------------------------------------------------------------- all


def write_all(run: dict[str, Any], targets: Sequence[Path]) -> list[Path]:
    """Every figure the run has numbers for."""
    written = []
    if run.get("throughput"):
        written += write_throughput(run, targets)
    if run.get("scaling", {}).get("workers") or run.get("scaling", {}).get("queued"):
        written += write_scaling(run, targets)
    if run.get("load_step"):
        written += write_load_step([Sample(**s) for s in run["load_step"]], targets)
    return written


def samples_json(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """The load-step samples as JSON objects (what write_all reads back)."""
    return [asdict(s) for s in samples]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plots", description="Draw a saved benchmark run as PNGs."
    )
    parser.add_argument(
        "json", nargs="?", type=Path, default=RESULTS / "latest.json", help="a run's JSON"
    )
    parser.add_argument("--docs-images", action="store_true", help="also write to docs/images/")
    args = parser.parse_args(argv)
    require_matplotlib()
    run = json.loads(args.json.read_text())
    for path in write_all(run, folders(args.docs_images)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
