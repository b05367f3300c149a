"""The resource pool behind run_task: take, run, give back or replace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic

from .._exceptions import ManagerStoppedError, ResourceCreationError
from .._metrics import Outcome, outcome
from .._types import E, R
from .failures import NOT_CALLED, HealthCheck, task_error
from .hooks import HookError
from .outcomes import KILLED
from .resources import NO_RESOURCE, Resources
from .run import RunState

__all__ = ["ResourcePool"]


class ResourcePool(Generic[R]):
    """Idle resources kept for ``run_task``, which runs a task in its caller's task."""

    __slots__ = ("_arrived", "_callers", "_completed", "_failed", "_health", "_idle",
                 "_resources", "_run", "_tidy")  # fmt: skip

    def __init__(
        self,
        *,
        resources: Resources[R],
        run: RunState,
        health: HealthCheck,
        arrived: Callable[[float], None],
        completed: Callable[[Outcome], None],
        failed: Callable[[Outcome], None],
        tidy: Callable[[], None],
    ) -> None:
        self._resources = resources
        self._run = run
        self._health = health
        self._arrived = arrived
        self._completed = completed
        self._failed = failed
        self._tidy = tidy
        self._idle: list[R] = []
        self._callers: set[asyncio.Task[Any]] = set()  # tasks inside run() now

    @property
    def available(self) -> int:
        return len(self._idle)

    def runs_in(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` is running a task function through :meth:`run` now."""
        return task in self._callers

    def fill(self, resources: list[R]) -> None:
        self._idle.extend(resources)

    async def close(self) -> None:
        """Destroy every idle resource at once (at shutdown, once nothing else holds one)."""
        idle, self._idle = self._idle, []
        await self._resources.destroy_all(idle)

    async def run(self, fn: Callable[[R], Awaitable[E]]) -> E:
        """Run ``fn`` now on an idle pool resource, or on a temporary one.

        Raises:
            ManagerStoppedError: kill() cancelled it.
            ResourceCreationError: the temporary resource could not be created.
        """
        run = self._run
        queued_at = time.monotonic()
        self._arrived(queued_at)
        resource: Any = self._idle.pop() if self._idle else NO_RESOURCE
        pooled = resource is not NO_RESOURCE
        healthy = True
        caller = asyncio.current_task()
        run.hold()
        if caller is not None:
            self._callers.add(caller)
        try:
            with run.killable():
                if not pooled:
                    try:
                        resource = await self._resources.create()
                    except HookError as exc:
                        raise ResourceCreationError(
                            f"failed to create temporary resource: {exc.error}"
                        ) from exc.error
                started_at = time.monotonic()
                returned: Any = NOT_CALLED
                try:
                    returned = fn(resource)
                    result: E = await returned
                except BaseException as exc:
                    error = task_error(fn, returned, exc)
                    healthy = self._health(error)
                    self._failed(outcome(queued_at, started_at, time.monotonic()))
                    if error is exc:
                        raise
                    raise error from None
                self._completed(outcome(queued_at, started_at, time.monotonic()))
                return result
            raise ManagerStoppedError(KILLED)  # kill() cancelled us
        finally:
            self._callers.discard(caller)
            try:
                if resource is not NO_RESOURCE:
                    if pooled and healthy:
                        self._idle.append(resource)
                    else:
                        try:
                            await self._resources.destroy(resource)  # may re-raise our cancel
                        finally:
                            if pooled:
                                self._refill()
            finally:
                self._tidy()  # a run_task-only load would otherwise grow the collector's logs
                run.release()

    def _refill(self) -> None:
        if self._run.running:
            self._run.start(self._refill_one, name="tasker_aio: pool refill")

    async def _refill_one(self) -> None:
        run = self._run
        if not run.running:  # restarted after shutdown began (see RunState.start)
            return
        resource: Any = NO_RESOURCE
        with run.killable():
            resource = await self._resources.create_with_retry(
                "pool resource", give_up=lambda: not run.running
            )
        if resource is NO_RESOURCE:
            return
        if run.running:
            self._idle.append(resource)
        else:
            await self._resources.destroy(resource)
