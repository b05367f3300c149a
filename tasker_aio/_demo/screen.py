"""Drawing the demo's samples on a terminal, or as plain lines when piped."""

from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Sequence
from typing import TextIO

from .simulation import DemoParams, Sample, Summary

_Segment = tuple[str, str]  # text, SGR style ("" = plain)

WIDTH = 79  # every line printed when piped, and every summary line, fits 80 columns
# One line a second when piped: a table whose header says what each number is.
_ROW = "{:>8}  {:<9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>6} {:>7}"
_COLUMNS = _ROW.format(
    "time", "phase", "workers", "queued", "done/s", "exec p95", "wait p95", "failed", "retried"
)


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
    """A duration in at most 7 characters up to 10,000 s: ``"123 ms"``, ``"12.3 s"``."""
    return f"{seconds * 1000:.0f} ms" if seconds < 9.9995 else f"{seconds:.1f} s"


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
        self._cursor_hidden = False

    def header(self) -> None:
        """Say what is about to run (and, when piped, name the columns of the lines)."""
        p = self.params
        self.out.write(
            f"tasker_aio demo: {p.duration:g} s of simulated model inference,"
            f" {p.failure_rate * 100:g}% of runs crash\n"
            f"load {p.rate:g}/s -> {p.burst_rate:g}/s -> {p.rate:g}/s;"
            f" workers {p.workers} base, {p.max_workers} at most\n"
        )
        if self.live:
            self.out.write("\x1b[?25l")  # hide the cursor while redrawing
            self._cursor_hidden = True
        else:
            self.out.write(_COLUMNS + "\n")
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
        """Give the cursor back (once, however often it is called)."""
        if self._cursor_hidden:
            self._cursor_hidden = False
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
        return _ROW.format(
            f"{s.elapsed:.1f} s",
            s.phase,
            f"{st.base_workers}+{st.burst_workers}/{self.params.max_workers}",
            f"{st.queued_tasks}+{st.priority_tasks}",
            f"{m.task_completion_rate:.1f}",
            _ms(m.p95_execution_time),
            _ms(m.p95_wait_time),
            m.total_tasks_failed,
            m.total_tasks_retried,
        )

    def summary(self, r: Summary) -> None:
        """Print the final summary (of what ran so far, if ``r.interrupted``)."""
        m, p = r.metrics, r.params
        title = "summary (interrupted: what ran so far)" if r.interrupted else "summary"
        if self.color:
            title = f"\x1b[1m{title}\x1b[0m"
        how = "; interrupted: tasks in flight killed" if r.interrupted else ", then a graceful stop"
        lines = [
            title,
            f"  ran          {r.elapsed:.1f} s ({p.duration:g} s of load{how})",
            f"  tasks        {m.total_tasks_arrived} submitted"
            f" ({r.priority_submitted} priority), {m.total_tasks_retried} retried",
            f"  outcomes     {m.total_tasks_completed} succeeded, {m.total_tasks_failed} failed;"
            f" success rate {m.success_rate:.1%}",
            f"  workers      {p.workers} base, peak {r.peak_workers} of {p.max_workers}",
            f"  models       {r.models_loaded} loaded, {r.models_unloaded} unloaded,"
            f" {r.crashes} replaced after a crash",
            f"  throughput   peak {r.peak_throughput:.1f} tasks/s,"
            f" average {m.total_tasks_completed / max(r.elapsed, 1e-9):.1f} tasks/s",
            f"  exec latency p50 {_ms(m.p50_execution_time)}, p95 {_ms(m.p95_execution_time)},"
            f" p99 {_ms(m.p99_execution_time)}, max {_ms(m.max_execution_time)}",
            f"  wait latency avg {_ms(m.average_wait_time)}, p95 {_ms(m.p95_wait_time)},"
            f" p99 {_ms(m.p99_wait_time)}",
            f"  workers/time {sparkline(squeeze(r.worker_history, 60), p.max_workers, self.spark)}",
        ]
        for error in r.errors:
            lines += textwrap.wrap(
                error, WIDTH, initial_indent="  error        ", subsequent_indent=" " * 15
            )
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
