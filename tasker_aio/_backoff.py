"""Retry delays."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from ._exceptions import ConfigError

__all__ = ["exponential_backoff"]


def _check(name: str, value: float, *, low: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (low <= value < math.inf)
    ):
        raise ConfigError(f"{name} must be a finite number >= {low}, got {value!r}")
    return float(value)


def exponential_backoff(
    initial: float = 0.1,
    maximum: float = 10.0,
    multiplier: float = 2.0,
    jitter: bool = True,
) -> Callable[[int], float]:
    """Return a backoff: attempt -> delay in seconds.

    The delay before re-run ``attempt`` (1 for the first) is
    ``min(maximum, initial * multiplier ** (attempt - 1))``; with ``jitter`` it is drawn
    uniformly from ``[0, that]`` ("full jitter"), which spreads retries of tasks that
    failed together.

    Raises:
        ConfigError: a parameter is negative, not finite, or ``multiplier < 1``.
    """
    first = _check("initial", initial, low=0.0)
    cap = _check("maximum", maximum, low=0.0)
    factor = _check("multiplier", multiplier, low=1.0)
    uniform = random.uniform

    def backoff(attempt: int) -> float:
        try:
            delay = min(cap, first * factor ** max(attempt - 1, 0))
        except OverflowError:  # a huge attempt number
            delay = cap
        return uniform(0.0, delay) if jitter else delay

    return backoff
