"""Caring for a resource between tasks: check, reset, recycle.

One policy for workers' resources and the ``run_task`` pool's, from ``check_resource``,
``check_idle_after``, ``check_interval``, ``on_reset`` and ``max_resource_age``. It
says when a resource needs care and gives it; the caller replaces the resource when
told why.
"""

from __future__ import annotations

import time
from typing import Any, Generic, Protocol

from .._config import Settings
from .._types import R
from .resources import Resources

__all__ = ["Care", "Held"]


class Held(Protocol):
    """A resource and what its care needs to know (a worker, a pool entry)."""

    resource: Any
    born: float  # when it was created: max_resource_age
    used_at: float  # when it was last known good: check_idle_after, check_interval
    checked: int  # Resources.epoch in which it was last known good


class Care(Generic[R]):
    """When a held resource needs care, and the care itself."""

    __slots__ = ("_age", "_check", "_idle_after", "_interval", "_resources")

    def __init__(self, settings: Settings[R], resources: Resources[R]) -> None:
        self._resources = resources
        self._check = settings.check_resource is not None
        self._idle_after = settings.check_idle_after
        self._interval = settings.check_interval
        self._age = settings.max_resource_age

    def mark_new(self, held: Held) -> None:
        """``held`` has a resource just created: young, and known good."""
        held.born = held.used_at = time.monotonic()
        held.checked = self._resources.epoch

    def needs_care(self, held: Held, now: float) -> bool:
        """Before a task: is the resource too old, or due for a check?

        Due: idle for ``check_idle_after``, or last known good before an unhealthy
        failure anywhere (a broken server usually broke every connection).
        """
        if self._age is not None and now - held.born >= self._age:
            return True
        if not self._check:
            return False
        return held.checked < self._resources.epoch or (
            self._idle_after is not None and now - held.used_at >= self._idle_after
        )

    def next_due(self, held: Held) -> float | None:
        """When an idle resource next needs care (keepalive or recycling), or None."""
        due = min(
            held.used_at + self._interval if self._interval is not None else float("inf"),
            held.born + self._age if self._age is not None else float("inf"),
        )
        return None if due == float("inf") else due

    async def tend(self, held: Held) -> str | None:
        """Recycle or check the resource; None if it is fit, else why to replace it.

        Raises:
            asyncio.CancelledError: the calling task was cancelled (the resource's
                state is then unknown: replace it).
        """
        if self._age is not None and time.monotonic() - held.born >= self._age:
            return f"it is older than max_resource_age ({self._age}s)"
        if not self._check:
            return None
        epoch = self._resources.epoch
        if not await self._resources.check(held.resource):
            return "check_resource failed"
        held.checked = epoch
        held.used_at = time.monotonic()
        return None

    async def after_task(self, held: Held) -> str | None:
        """After a task on a healthy resource: reset it; None if fit, else why to replace.

        Raises:
            asyncio.CancelledError: the calling task was cancelled (replace it).
        """
        if not await self._resources.reset(held.resource):
            return "on_reset failed"
        now = time.monotonic()
        if self._age is not None and now - held.born >= self._age:
            return f"it is older than max_resource_age ({self._age}s)"
        held.used_at = now
        return None

    async def usable_after_failure(self, held: Held) -> bool:
        """After a healthy failure on it: is the resource still usable (check_resource)?

        Raises:
            asyncio.CancelledError: the calling task was cancelled (replace it).
        """
        return not self._check or await self._resources.check(held.resource)
