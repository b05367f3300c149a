"""What a worker needs of the worker set it belongs to."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from .._config import Settings
from .._metrics import Outcome
from .._types import R
from .admission import Admission
from .care import Care
from .events import EventBus
from .hooks import SafeLogger
from .idle import IdleWorkers
from .outcomes import Outcomes
from .resources import Resources
from .run import RunState

__all__ = ["Crew"]


class Crew(Protocol[R]):
    """What a worker needs of the worker set it belongs to (see WorkerSet)."""

    loop: asyncio.AbstractEventLoop
    settings: Settings[R]
    run: RunState
    admission: Admission
    outcomes: Outcomes
    resources: Resources[R]
    care: Care[R]
    idle: IdleWorkers
    events: EventBus
    logger: SafeLogger
    completed: Callable[[Outcome], None]
    failed: Callable[[Outcome], None]
    tidy: Callable[[], None]  # bounds the collector's buffered events at slow points
    turns: int  # event-loop turns counted so far (see watch_turns)
    turn_deadline: float  # monotonic time the workers' budget for this turn runs out

    def watch_turns(self, now: float) -> int:
        """The loop-turn count now; it moves once the loop has run its next callbacks."""
        ...

    def gone(self, worker: Any) -> None:
        """``worker`` has ended and destroyed its resource."""
        ...

    def burst_created(self, created: bool) -> None:
        """A burst worker's creation succeeded, or failed for good (scaling backs off)."""
        ...
