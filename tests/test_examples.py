"""The example programs run to completion and print what the README quotes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str) -> list[str]:
    """Run ``examples/<name>`` from the repository root; return its stdout lines."""
    completed = subprocess.run(
        [sys.executable, f"examples/{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{name} exited with {completed.returncode}\n"
        f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed.stdout.splitlines()


def assert_in_order(lines: list[str], expected: list[str]) -> None:
    """Every expected line occurs in ``lines``, in this order (others may come between)."""
    listing = "\n".join(lines)
    position = 0
    for line in expected:
        assert line in lines[position:], f"{line!r} missing or out of order in:\n{listing}"
        position = lines.index(line, position) + 1


def test_quickstart() -> None:
    """The quickstart prints the query result a worker's connection returned."""
    assert run_example("quickstart.py") == ["users: 42"]


def test_basic_calculator() -> None:
    """All three submission styles deliver their results; stats show 2 idle workers."""
    lines = run_example("basic_calculator.py")
    assert lines.count("INFO: Creating CalculatorResource") == 2
    assert lines.count("INFO: Destroying CalculatorResource") == 2
    for prefix in (
        "Task 1 (Multiplication) Result: 250 (took ",
        "Task 2 (Addition) Result: 35 (took ",
        "Task 3 (Subtraction) Result: 60 (took ",
    ):
        assert sum(line.startswith(prefix) for line in lines) == 1, prefix
    assert not any("failed" in line for line in lines)
    assert_in_order(
        lines,
        [
            "Active Workers: 2",
            "Queued Tasks: 0",
            "Available Resources: 0",
            "Basic usage example finished.",
            "INFO: Destroying CalculatorResource",
        ],
    )


def test_health_check() -> None:
    """An unhealthy error replaces the worker (destroy + create) and re-runs the task."""
    lines = run_example("health_check.py")
    assert_in_order(
        lines,
        [
            "INFO: Creating ImageProcessor 1",
            "INFO: Creating ImageProcessor 2",
            "INFO: Creating ImageProcessor 3",
            "Problematic Image Task Completed: problematic_image_processed.jpg",
            "Broken Image Task Failed: max retries exceeded: processor_crash (2 attempts)",
            "Active Workers: 2",
            "Available Resources: 1",
        ],
    )
    # Which idle worker takes a re-run is the scheduler's business; what is pinned is
    # that each crashed processor is destroyed and replaced, and every re-run happens
    # on a different processor than the attempt before it.
    for image, attempts in (("problematic_image", 2), ("broken_image", 2)):
        used = [
            int(line.split()[1])
            for line in lines
            if line.startswith("Worker ") and f"processing {image} " in line
        ]
        assert len(used) == attempts, (image, used)
        assert used[0] != used[1]
    crashed = [
        int(line.split()[1])
        for i, line in enumerate(lines)
        if line.startswith("Worker ")
        and i + 1 < len(lines)
        and lines[i + 1].startswith("WARN: Detected unhealthy error")
    ]
    destroyed_ids = [
        int(line.split()[-1])
        for line in lines
        if line.startswith("INFO: Destroying ImageProcessor")
    ]
    assert crashed == destroyed_ids[: len(crashed)]
    assert (
        lines.count("WARN: Detected unhealthy error: processor_crash. Worker will be replaced.")
        == 3
    )
    created = [line for line in lines if line.startswith("INFO: Creating ImageProcessor")]
    destroyed = [line for line in lines if line.startswith("INFO: Destroying ImageProcessor")]
    assert len(created) == len(destroyed) == 6  # every resource destroyed exactly once
    assert sorted(line.split()[-1] for line in created) == sorted(
        line.split()[-1] for line in destroyed
    )


def test_graceful_shutdown() -> None:
    """stop() runs every queued task to completion, then destroys every resource."""
    lines = run_example("shutdown.py")
    graceful = lines[: lines.index("--- Immediate shutdown: kill() ---")]
    assert_in_order(
        graceful,
        [
            "Initiating graceful shutdown...",
            "Task manager gracefully shut down.",
            "Final Active Workers: 0",
            "Task 0 completed",
            "Task 1 completed",
            "Task 2 completed",
            "Task 3 completed",
            "Task 4 completed",
            "New task after stop(): ManagerStoppedError: task manager is shutting down",
        ],
    )
    shut_down = graceful.index("Task manager gracefully shut down.")
    for task_id in range(5):  # every task ran before stop() returned
        assert any(line.endswith(f"processing Task {task_id}") for line in graceful[:shut_down]), (
            task_id
        )
    assert sorted(line for line in graceful[:shut_down] if "Destroying" in line) == [
        "INFO: Destroying ComputeResource 1",
        "INFO: Destroying ComputeResource 2",
    ]


def test_immediate_shutdown() -> None:
    """kill() cancels the running task, drops the queued one, answers both callers."""
    lines = run_example("shutdown.py")
    immediate = lines[lines.index("--- Immediate shutdown: kill() ---") :]
    assert_in_order(
        immediate,
        [
            "Worker 1 processing long Task...",
            "Initiating immediate shutdown (kill)...",
            "Task on Worker 1 cancelled due to shutdown.",
            "INFO: Destroying ComputeResource 1",
            "Task manager immediately shut down.",
            "Final Active Workers: 0",
            "long task: ManagerStoppedError: task manager was killed",
            "queued task: ManagerStoppedError: task manager was killed",
        ],
    )
    assert "This never prints: kill() drops queued tasks." not in immediate
    assert "long task completed" not in immediate


def test_events() -> None:
    """Events of a replacement, a retry, a burst and a shutdown print in the order they happen."""
    lines = run_example("events.py")
    assert_in_order(
        lines,
        [
            "--- a lost connection: replaced, and the query re-run on the new one",
            "select 1: ok",
            "--- a failing query: retried after its backoff, then failed for good",
            "caller got: max retries exceeded: select 2 on connection 2",
            "--- more work than one worker: a burst worker comes, then goes",
            "10 queries answered",
            "--- shutdown",
        ],
    )
    events = [line for line in lines if line.startswith("event: ")]
    assert_in_order(
        events,
        [
            "event: resource created, 1 live",
            "event: base worker added",
            "event: task retried, attempt 2, after an unhealthy failure: select 1 on connection 1",
            "event: worker's resource replaced, after an unhealthy error:"
            " ConnectionLost('select 1 on connection 1')",
            "event: task retried, attempt 2, after a healthy failure: select 2 on connection 2",
            "event: task failed after 2 attempts: max retries exceeded: select 2 on connection 2",
            "event: burst worker added",
            "event: idle burst worker retired",
            "event: shutdown began (stop)",
        ],
    )
    assert events[-1] == "event: shutdown finished"
    assert any(line.startswith("event: scaling +1 with ") for line in events)
    created = [line for line in events if line.startswith("event: resource created")]
    destroyed = [line for line in events if line.startswith("event: resource destroyed")]
    assert len(created) == len(destroyed) == 3
