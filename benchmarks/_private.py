"""Every place the benchmarks reach into tasker_aio's private state, and why.

The engine is free to rename or move anything private; when it does, re-point the
function here that fails, and nothing else. Each one fails loudly rather than measure
a manager it did not change.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["metrics_hooks_off", "stretch_turn_budget"]

_DISCARD: Any = id  # a C builtin taking one argument: the cheapest call there is
# Where TaskManager.__init__ finds the function that gives it its per-task metrics
# hooks (tasker_aio/_engine/recording.py, imported into the manager's module).
_RECORDERS_HOME = "tasker_aio._manager"
_RECORDERS = "recorders"
# Where the workers' fairness budget lives.
_BUDGET_HOME = "tasker_aio._engine.workers"
_BUDGET = "_TURN_BUDGET"


def _noop() -> None:
    pass


def _private(module_name: str, name: str, function: str) -> Any:
    """``module_name`` itself, after checking it still has ``name``."""
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        raise RuntimeError(f"{module_name}.{name} moved: re-point benchmarks._private.{function}")
    return module


@contextmanager
def metrics_hooks_off() -> Iterator[None]:
    """Managers built inside get metrics hooks that do nothing.

    The metrics-cost section needs a true zero to subtract: a no-op MetricsCollector
    still costs its Python calls. A manager takes its per-task hooks (arrival,
    completion, failure, retry, tidy) from ``recorders()`` once, as it is built; this
    swaps that function for one returning C builtins and no-ops.
    """
    module = _private(_RECORDERS_HOME, _RECORDERS, "metrics_hooks_off")
    from tasker_aio._metrics import Recorders

    def off(*_args: object) -> Recorders:
        return Recorders(_DISCARD, _DISCARD, _DISCARD, _noop, _noop)

    real = getattr(module, _RECORDERS)
    setattr(module, _RECORDERS, off)
    try:
        yield
    finally:
        setattr(module, _RECORDERS, real)


def stretch_turn_budget(seconds: float) -> None:
    """Let workers run ``seconds`` back to back before the fairness yield (default 1 ms).

    For instruction counts only: under valgrind everything runs about 50x slower while
    the clock does not, so the yield fires on nearly every task instead of every few
    dozen, and the count would depend on how fast the machine ran valgrind that day.
    Stretched, the counts repeat. Managers made after the call see it.
    """
    module = _private(_BUDGET_HOME, _BUDGET, "stretch_turn_budget")
    setattr(module, _BUDGET, seconds)
