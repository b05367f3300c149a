"""A short soak in the default suite: 20,000 tasks, every fault, every invariant, flat memory.

The full soak (a million tasks) is ``python -m tests.soak`` / ``nox -s soak``; both run
the same :func:`tests.soak.run_soak`.
"""

from __future__ import annotations

import random

import pytest

from .soak import run_soak

SOAK_TASKS = 20_000
MAX_GROWTH_KIB = 256  # traced memory, end of the first quarter -> end


@pytest.mark.timeout(120)
def test_short_soak_loses_nothing_and_does_not_grow() -> None:
    """20,000 tasks, faults in tasks and hooks, cancellations, bursts, a stop, a kill: all kept."""
    seed = random.randrange(1 << 32)
    report = run_soak(SOAK_TASKS, seed=seed, epoch_tasks=SOAK_TASKS // 2)
    summary = "\n".join([f"seed {seed}", *report.lines(), *report.problems[:20]])
    assert report.problems == [], summary
    assert report.tasks == SOAK_TASKS and report.epochs == 2, summary  # one stop, one kill
    counts = report.counts
    # The faults really happened (else the soak proves little).
    assert counts["failed"] and counts["retried"] and counts["neither"], summary
    assert counts["cancelled"] + counts["timeout"] > 0, summary
    assert counts["hook_failures"] > 0, summary
    assert report.peak_burst_workers > 0, summary
    assert report.memory_quarter > 0 and report.memory_end > 0, summary
    assert report.growth < MAX_GROWTH_KIB * 1024, summary
