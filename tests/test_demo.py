"""``python -m tasker_aio demo``: the command, its piped output, and the simulation."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from tasker_aio._demo import DemoParams, Sample, Screen, simulate

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = (
    "summary",
    "  tasks ",
    "  success rate ",
    "  workers ",
    "  throughput ",
    "  exec latency ",
    "  wait latency ",
    "  workers/time ",
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tasker_aio ARGS`` with stdout piped (so not a TTY)."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "tasker_aio", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_piped_demo_prints_compact_lines_and_a_summary() -> None:
    """Piped, the demo exits 0 with a line a second, no ANSI codes and the summary."""
    done = run("demo", "--duration", "2", "--seed", "7")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tasker_aio demo: 2 s of simulated model inference")
    assert 2 <= sum(line.startswith("[") for line in lines) <= 4, done.stdout
    assert len(lines) <= 16, done.stdout
    for start in SUMMARY:
        assert sum(line.startswith(start) for line in lines) == 1, (start, done.stdout)


def test_demo_help_explains_every_option() -> None:
    """``demo --help`` lists every option."""
    done = run("demo", "--help")
    assert done.returncode == 0
    for option in ("--duration", "--rate", "--burst-rate", "--workers", "--max-workers"):
        assert option in done.stdout
    for option in ("--failure-rate", "--seed", "--no-color"):
        assert option in done.stdout


def test_no_arguments_or_help_lists_the_demo_command() -> None:
    """``python -m tasker_aio`` with no arguments, or ``--help``, lists ``demo``."""
    for args in ((), ("--help",)):
        done = run(*args)
        assert done.returncode == 0
        assert "usage: python -m tasker_aio" in done.stdout
        assert "demo" in done.stdout


def test_bad_options_are_refused() -> None:
    """More base workers than --max-workers, or a failure rate above 1, exit 2."""
    assert run("demo", "--workers", "4", "--max-workers", "3").returncode == 2
    assert run("demo", "--failure-rate", "1.5").returncode == 2


async def test_simulation_bursts_and_accounts_for_every_task() -> None:
    """An overload adds burst workers; every crash is a retry or a failure; all cleaned up."""
    params = DemoParams(
        duration=1.5, rate=20, burst_rate=200, workers=2, max_workers=6, failure_rate=0.1, seed=1
    )
    samples: list[Sample] = []
    result = await simulate(params, samples.append, sample_interval=0.1)
    m = result.metrics
    assert m.total_tasks_arrived > 50
    assert m.total_tasks_arrived == m.total_tasks_completed + m.total_tasks_failed
    assert result.crashes == m.total_tasks_retried + m.total_tasks_failed
    assert params.workers < result.peak_workers <= params.max_workers
    assert result.models_loaded == result.models_unloaded
    assert result.errors == ()
    assert samples[-1].phase == "done"
    assert {s.phase for s in samples} >= {"warm-up", "burst", "cool-down"}


async def test_live_screen_redraws_in_place() -> None:
    """On a terminal the block is redrawn with cursor-up; no colors when color=False."""
    out = io.StringIO()
    params = DemoParams(duration=0.3, rate=30, burst_rate=30, seed=2)
    await simulate(params, Screen(out, params, live=True, color=False).update, sample_interval=0.1)
    text = out.getvalue()
    assert text.count("\x1b[7A") >= 2
    assert re.findall(r"\x1b\[[0-9;]*m", text) == []
