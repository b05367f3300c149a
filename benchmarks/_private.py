"""Every place the benchmarks reach into tasker_aio's private state, and why.

The engine is free to rename or move anything private; when it does, re-point the
function here that fails, and nothing else. Each one fails loudly rather than measure
a manager it did not change.
"""

from __future__ import annotations

from typing import Any

from tasker_aio import TaskManager

__all__ = ["stretch_turn_budget", "switch_metrics_hooks_off"]

_DISCARD: Any = id  # a C builtin taking one argument: the cheapest call there is
_METRICS_HOOKS = ("_arrived", "_completed", "_failed")


def switch_metrics_hooks_off(manager: TaskManager[Any, Any]) -> None:
    """Replace the manager's per-task metrics hooks with a no-op builtin.

    The metrics-cost section needs a true zero to subtract: a no-op MetricsCollector
    still costs its Python calls. The hooks are the callables the hot path calls on
    arrival, completion and failure (``recorders()`` in ``tasker_aio/_metrics.py``).
    Call it before the manager's workers first run: they read the hooks once.
    """
    missing = [name for name in _METRICS_HOOKS if not hasattr(manager, name)]
    if missing:
        raise RuntimeError(
            f"tasker_aio's private metrics hooks moved ({missing!r} not found):"
            " re-point benchmarks._private.switch_metrics_hooks_off"
        )
    for name in _METRICS_HOOKS:
        setattr(manager, name, _DISCARD)


def stretch_turn_budget(seconds: float) -> None:
    """Let workers run ``seconds`` back to back before the fairness yield (default 1 ms).

    For instruction counts only: under valgrind everything runs about 50x slower while
    the clock does not, so the yield fires on nearly every task instead of every few
    dozen, and the count would depend on how fast the machine ran valgrind that day.
    Stretched, the counts repeat exactly. Managers made after the call see it.
    """
    from tasker_aio import _manager

    if not hasattr(_manager, "_TURN_BUDGET"):
        raise RuntimeError(
            "tasker_aio._manager._TURN_BUDGET moved: re-point"
            " benchmarks._private.stretch_turn_budget"
        )
    _manager._TURN_BUDGET = seconds
