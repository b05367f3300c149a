"""The worker set: spawning, waking, interrupting and retiring workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic

from .._config import Settings
from .._events import WorkerAdded, WorkerRetired
from .._metrics import Outcome
from .._types import R
from .admission import Admission
from .care import Care
from .events import EventBus
from .hooks import SafeLogger
from .idle import IdleWorkers
from .outcomes import Outcomes
from .queues import Task
from .resources import NO_RESOURCE, Resources
from .run import RunState
from .worker import READY, Worker

__all__ = ["WorkerCounts", "WorkerSet"]

# Seconds of back-to-back task running the workers share per event-loop turn, however
# many they are: past it a worker yields, so other coroutines wait a few ms at most.
_TURN_BUDGET = 0.001


class WorkerCounts:
    """How many workers are in each condition, counted in one pass."""

    __slots__ = ("base", "burst", "creating", "running", "spare")

    def __init__(self) -> None:
        self.base = 0  # ready base workers
        self.burst = 0  # ready burst workers
        self.creating = 0  # creating or destroying a resource: they hold a slot
        self.running = 0  # running a task
        self.spare = 0  # burst workers idle for the grace period asked for


class WorkerSet(Generic[R]):
    """Every worker of the manager, and the shared state the workers use (a Crew)."""

    __slots__ = (
        "_burst_failures", "_bursts_blocked_until", "_turn_watched", "_workers", "admission",
        "care", "completed", "events", "failed", "idle", "logger", "loop", "outcomes",
        "resources", "run", "settings", "tidy", "turn_deadline", "turns",
    )  # fmt: skip

    def __init__(
        self,
        *,
        settings: Settings[R],
        run: RunState,
        admission: Admission,
        outcomes: Outcomes,
        resources: Resources[R],
        care: Care[R],
        idle: IdleWorkers,
        events: EventBus,
        logger: SafeLogger,
        completed: Callable[[Outcome], None],
        failed: Callable[[Outcome], None],
        tidy: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.run = run
        self.admission = admission
        self.outcomes = outcomes
        self.resources = resources
        self.care = care
        self.idle = idle
        self.events = events
        self.logger = logger
        self.completed = completed
        self.failed = failed
        self.tidy = tidy
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # see bind
        self.turns = 0  # event-loop turns seen by _count_turn, see watch_turns
        self.turn_deadline = 0.0  # when this turn's budget runs out (monotonic)
        self._turn_watched = False
        self._workers: list[Worker[R, Any]] = []
        self._burst_failures = 0  # burst creations failed in a row
        self._bursts_blocked_until = 0.0  # no burst worker before then (monotonic)
        outcomes.interrupt = self.interrupt

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __len__(self) -> int:
        return len(self._workers)

    def spawn(self, burst: bool, resource: Any = NO_RESOURCE) -> None:
        """Start a worker, handing it ``resource`` or letting it create its own.

        A worker task cancelled from outside before it ends (even before its first
        step, when none of its code has run) is started again, so its slot and its
        resource are never lost (see RunState.start).
        """
        worker: Worker[R, Any] = Worker(self, burst, resource)
        self._workers.append(worker)
        self.run.start(
            worker.run,
            name=f"tasker_aio: {'burst ' if burst else ''}worker",
            finished=lambda: worker.gone,
        )
        if self.events.active:
            self.events.publish(WorkerAdded(at=time.monotonic(), burst=burst))

    def add_burst(self, count: int) -> int:
        """Start up to ``count`` burst workers, each creating its own resource; how many.

        Each needs a free slot among ``max_resources``; none starts while burst
        creations are backing off after failing (see burst_created).
        """
        if time.monotonic() < self._bursts_blocked_until:
            return 0
        added = 0
        while added < count and self.resources.slots.take_now():
            self.spawn(burst=True)
            added += 1
        return added

    def burst_created(self, created: bool) -> None:
        """A burst creation ended: success clears the backoff, failure extends it."""
        if created:
            self._burst_failures = 0
            self._bursts_blocked_until = 0.0
            return
        self._burst_failures += 1
        delay = self.resources.create_delay(self._burst_failures)
        self._bursts_blocked_until = time.monotonic() + delay
        self.logger.warning(
            "a burst worker could not create its resource (%d in a row); no burst worker"
            " for %.2f s",
            self._burst_failures,
            delay,
        )

    def gone(self, worker: Worker[R, Any]) -> None:
        self._workers.remove(worker)

    def watch_turns(self, now: float) -> int:
        """The loop-turn count now; it moves once the loop has run its next callbacks.

        One callback per loop turn at most, and only while workers run: it tells a
        worker whether its run of tasks was broken by a turn of the loop, and starts
        each turn's budget (``turn_deadline``). Armed again after its deadline passed,
        it was unwatched for a while: the budget starts ``now``.
        """
        if not self._turn_watched:
            self._turn_watched = True
            if now > self.turn_deadline:
                self.turn_deadline = now + _TURN_BUDGET
            self.loop.call_soon(self._count_turn)
        return self.turns

    def _count_turn(self) -> None:
        # Scheduled in the last turn, it runs among the first callbacks of this one.
        self.turns += 1
        self.turn_deadline = time.monotonic() + _TURN_BUDGET
        self._turn_watched = False

    def interrupt(self, task: Task[Any, Any]) -> None:
        """Cancel ``task`` on the worker running it: its caller gave up."""
        for worker in self._workers:
            if worker.current is task:
                if worker.task is asyncio.current_task():
                    # Cancelled from inside its own fn: a worker cancelling itself
                    # would keep the cancel pending past uncancel(), so interrupt
                    # it from the loop instead.
                    self.loop.call_soon(self.outcomes.forget, task)
                else:
                    worker.interrupt()
                return

    def retire(self, count: int, idle_for: float) -> int:
        """Retire up to ``count`` burst workers idle for ``idle_for`` s, newest first."""
        now = time.monotonic()
        retired = 0
        for worker in reversed(self._workers):
            if retired == count:
                break
            if worker.spare(now, idle_for):
                worker.retire()
                retired += 1
                if self.events.active:
                    self.events.publish(WorkerRetired(at=now, idle_for=now - worker.idle_since))
        return retired

    def answer_running_killed(self) -> None:
        """Answer every running task with ManagerStoppedError (kill)."""
        for worker in self._workers:
            if worker.current is not None:
                self.outcomes.answer_killed(worker.current)

    def runs_in(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` is one of the workers' asyncio tasks."""
        return task is not None and any(w.task is task for w in self._workers)

    def counts(self, spare_for: float | None = None) -> WorkerCounts:
        """Count the workers; ``spare`` counts burst workers idle for ``spare_for`` s."""
        counts = WorkerCounts()
        now = time.monotonic()
        for worker in self._workers:
            if worker.phase == READY:
                if worker.burst:
                    counts.burst += 1
                else:
                    counts.base += 1
                if spare_for is not None and worker.spare(now, spare_for):
                    counts.spare += 1
            else:
                counts.creating += 1
            if worker.current is not None:
                counts.running += 1
        return counts
