"""Lifecycle events: what ``TaskManager.events()`` yields.

Every event is a frozen dataclass with ``at``, the ``time.monotonic()`` second it
happened. They tell an operator why the manager did what it did::

    Event
    ├── WorkerAdded          a worker started (base at entry, or burst)
    ├── WorkerRetired        an idle burst worker was retired
    ├── WorkerReplaced       a worker's resource was replaced, and why
    ├── ResourceCreated      on_create returned a resource
    ├── ResourceDestroyed    on_destroy finished (or was abandoned after destroy_timeout)
    ├── ResourceCheckFailed  check_resource said no, or raised
    ├── TaskRetried          a failed task will run again: attempt, delay, error
    ├── TaskFailed           a task failed for good: its final error, attempts
    ├── ScalingDecided       the scaling loop changed the worker count, and what it saw
    ├── ShutdownBegan        stop() or kill() began
    ├── ShutdownFinished     every resource is destroyed
    └── EventsLost           this subscriber fell behind: how many events it missed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._snapshots import TaskMetrics, TaskStats

__all__ = [
    "Event",
    "EventsLost",
    "ResourceCheckFailed",
    "ResourceCreated",
    "ResourceDestroyed",
    "ScalingDecided",
    "ShutdownBegan",
    "ShutdownFinished",
    "TaskFailed",
    "TaskRetried",
    "WorkerAdded",
    "WorkerReplaced",
    "WorkerRetired",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happened to the manager, ``at`` a ``time.monotonic()`` second."""

    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerAdded(Event):
    """A worker started: a base worker at entry, or a burst worker."""

    burst: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRetired(Event):
    """An idle burst worker was retired by the scaling loop."""

    idle_for: float  # seconds it had been idle


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerReplaced(Event):
    """A worker's resource was destroyed and a new one created in its place.

    ``reason`` says why (an unhealthy error, a failed check or reset, its age);
    ``error`` is the unhealthy error, when that was the reason.
    """

    burst: bool
    reason: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceCreated(Event):
    """``on_create`` returned a resource."""

    live_resources: int  # live resources counting this one


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceDestroyed(Event):
    """``on_destroy`` finished, or was abandoned after ``destroy_timeout``."""

    abandoned: bool
    live_resources: int  # live resources left


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceCheckFailed(Event):
    """``check_resource`` said a resource is not usable (False), or raised ``error``."""

    error: BaseException | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRetried(Event):
    """A failed task will run again: the ``attempt`` of its next run, after ``delay`` s.

    ``unhealthy`` failures re-run at once on the priority queue; healthy ones after
    their backoff.
    """

    attempt: int
    delay: float
    unhealthy: bool
    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(Event):
    """A task failed for good after ``attempts`` runs; ``error`` is what its caller got."""

    attempts: int
    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingDecided(Event):
    """The scaling loop added (``change`` > 0) or retired (< 0) burst workers.

    ``metrics`` and ``stats`` are the snapshots ``decide`` saw; ``creating`` the workers
    holding a slot without being ready, ``idle_burst`` the burst workers idle past the
    grace period. ``applied`` is how many were really added or retired.
    """

    change: int
    applied: int
    metrics: TaskMetrics
    stats: TaskStats
    creating: int
    idle_burst: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownBegan(Event):
    """``stop()`` (``how="stop"``) or ``kill()`` began."""

    how: Literal["stop", "kill"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownFinished(Event):
    """Shutdown is over: every resource is destroyed. The last event of a manager."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsLost(Event):
    """This subscriber fell behind its buffer: the ``count`` oldest events were dropped."""

    count: int
