"""``python -m tasker_aio demo``: the command, its piped output, and the simulation."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tasker_aio import TaskMetrics, TaskStats
from tasker_aio._demo import DemoParams, Sample, Screen, Simulation, Summary, main, simulate

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = (
    "  ran ",
    "  tasks ",
    "  outcomes ",
    "  workers ",
    "  models ",
    "  throughput ",
    "  exec latency ",
    "  wait latency ",
    "  workers/time ",
)
COLUMNS = 79  # fits an 80-column terminal without wrapping


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
    assert lines[2].split() == [
        "time", "phase", "workers", "queued", "done/s", "exec", "p95", "wait", "p95", "failed",
        "retried",
    ]  # fmt: skip
    assert 2 <= sum(re.match(r" *\d+\.\d s  ", line) is not None for line in lines) <= 4
    assert len(lines) <= 20, done.stdout
    assert lines.count("summary") == 1
    for start in SUMMARY:
        assert sum(line.startswith(start) for line in lines) == 1, (start, done.stdout)
    assert max(len(line) for line in lines) <= COLUMNS, done.stdout


def test_piped_lines_say_which_latency_each_p95_is() -> None:
    """Every p95 printed when piped is labelled as an execution or a wait time."""
    out = io.StringIO()
    screen = Screen(out, DemoParams(), live=False, color=False)
    screen.header()
    screen.update(sample(elapsed=1.0))
    for line in out.getvalue().splitlines():
        assert re.findall(r"\w* p95", line) in ([], ["exec p95", "wait p95"]), line


def sample(elapsed: float = 1.0, *, big: bool = False) -> Sample:
    """A sample with ordinary numbers, or the largest the demo's lines are laid out for.

    That is: 99 workers, 9,999 queued tasks (999 priority), 99,999.9 tasks/s, latencies
    up to 999.9 s and a million failures or retries.
    """
    stats = TaskStats(
        base_workers=10 if big else 2,
        active_workers=99 if big else 3,
        burst_workers=89 if big else 1,
        queued_tasks=9_999 if big else 3,
        priority_tasks=999 if big else 1,
        running_tasks=99 if big else 3,
        available_resources=0,
    )
    metrics = TaskMetrics(
        p50_execution_time=99.9 if big else 0.05,
        p95_execution_time=999.9 if big else 0.1,
        p99_execution_time=999.9 if big else 0.2,
        max_execution_time=999.9 if big else 0.3,
        average_wait_time=999.9 if big else 0.01,
        p95_wait_time=999.9 if big else 0.02,
        p99_wait_time=999.9 if big else 0.03,
        task_completion_rate=99_999.9 if big else 40.0,
        total_tasks_arrived=9_999_999 if big else 100,
        total_tasks_completed=9_999_999 if big else 97,
        total_tasks_failed=999_999 if big else 3,
        total_tasks_retried=999_999 if big else 5,
        success_rate=0.9,
    )
    return Sample(elapsed, "cool-down", 15.0, stats, metrics)


@pytest.mark.parametrize("big", [False, True], ids=["defaults", "large-numbers"])
@pytest.mark.parametrize("interrupted", [False, True], ids=["finished", "interrupted"])
def test_every_piped_line_fits_80_columns(big: bool, interrupted: bool) -> None:
    """Header, per-second lines and summary fit 80 columns, even with large numbers."""
    params = DemoParams(
        duration=9_999 if big else 12,
        rate=9_999 if big else 15,
        burst_rate=99_999 if big else 80,
        workers=10 if big else 2,
        max_workers=99 if big else 8,
        failure_rate=0.125,
    )
    s = sample(elapsed=9_999.9 if big else 12.3, big=big)  # the longest time it lays out
    summary = Summary(
        params=params,
        elapsed=s.elapsed,
        metrics=s.metrics,
        priority_submitted=999_999 if big else 10,
        worker_history=tuple(range(1, 500)),
        peak_workers=params.max_workers,
        peak_throughput=s.metrics.task_completion_rate,
        models_loaded=999_999 if big else 12,
        models_unloaded=999_999 if big else 12,
        crashes=999_999 if big else 3,
        errors=("on_destroy failed for <model 1>: " + "x" * 200, "on_create failed"),
        interrupted=interrupted,
    )
    out = io.StringIO()
    screen = Screen(out, params, live=False, color=False)
    screen.header()
    for elapsed in (1.0, 2.0, s.elapsed):
        screen.update(sample(elapsed, big=big))
    screen.summary(summary)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 + 3 + 10
    too_long = [line for line in lines if len(line) > COLUMNS]
    assert too_long == []
    assert sum(line.startswith("  error ") for line in lines) == 2


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
    screen = Screen(out, params, live=True, color=False)
    screen.header()
    await simulate(params, screen.update, sample_interval=0.1)
    screen.close()
    screen.close()
    text = out.getvalue()
    assert text.count("\x1b[7A") >= 2
    assert re.findall(r"\x1b\[[0-9;]*m", text) == []
    assert text.count("\x1b[?25l") == text.count("\x1b[?25h") == 1  # cursor hidden, shown once


def test_ctrl_c_prints_interrupted_and_the_summary_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (SIGINT) during the run prints ``interrupted`` and a summary of what ran."""
    update = Screen.update
    sent: list[bool] = []

    def interrupt_after_three_successes(screen: Screen, s: Sample) -> None:
        update(screen, s)
        # Once: a second SIGINT while the first is handled is asyncio.run's "force quit".
        if s.metrics.total_tasks_completed >= 3 and not sent:
            sent.append(True)
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends; asyncio.run handles it

    monkeypatch.setattr(Screen, "update", interrupt_after_three_successes)
    out = io.StringIO()
    argv = ["demo", "--duration", "60", "--rate", "100", "--failure-rate", "0", "--seed", "3"]
    assert main(argv, out=out) == 130
    lines = out.getvalue().splitlines()
    summary = lines[lines.index("interrupted") + 1 :]
    assert summary[0] == "summary (interrupted: what ran so far)"
    for start in SUMMARY:
        assert sum(line.startswith(start) for line in summary) == 1, (start, summary)
    ran = next(line for line in summary if line.startswith("  ran "))
    assert "(60 s of load; interrupted: tasks in flight killed)" in ran
    outcomes = next(line for line in summary if line.startswith("  outcomes "))
    assert int(outcomes.split()[1]) >= 3  # "N succeeded"
    models = next(line for line in summary if line.startswith("  models ")).split()
    assert models[1] == models[3]  # as many unloaded as loaded: the kill cleaned up


async def test_cancelled_simulation_still_summarises_what_ran() -> None:
    """Cancelling ``Simulation.run`` kills the manager; ``summary()`` keeps the totals."""
    params = DemoParams(duration=60, rate=100, burst_rate=100, failure_rate=0, seed=4)
    enough = asyncio.Event()

    def watch(s: Sample) -> None:
        if s.metrics.total_tasks_completed >= 3:
            enough.set()

    simulation = Simulation(params, watch, sample_interval=0.01)
    run = asyncio.create_task(simulation.run())
    await enough.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    summary = simulation.summary(interrupted=True)
    assert summary.interrupted
    assert summary.metrics.total_tasks_completed >= 3
    assert summary.models_loaded == summary.models_unloaded >= params.workers
    assert 0 < summary.elapsed < params.duration
    assert summary.peak_workers >= params.workers


def test_summary_before_the_manager_started_is_empty() -> None:
    """Interrupted before anything ran, the summary prints zeros instead of failing."""
    params = DemoParams()
    summary = Simulation(params).summary(interrupted=True)
    assert summary.metrics == TaskMetrics()
    assert (summary.elapsed, summary.peak_workers, summary.worker_history) == (0.0, 0, ())
    out = io.StringIO()
    Screen(out, params, live=False, color=False).summary(summary)
    assert "  tasks        0 submitted (0 priority), 0 retried" in out.getvalue()
