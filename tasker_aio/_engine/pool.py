"""The resource pool behind run_task: take, check, run, reset, give back or replace."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic

from .._config import Settings
from .._exceptions import ManagerStoppedError, ResourceCreationError
from .._metrics import Outcome, outcome
from .._types import E, R
from .care import Care
from .failures import NOT_CALLED, HealthCheck, task_error
from .hooks import HookError
from .outcomes import KILLED
from .resources import NO_RESOURCE, Resources
from .run import RunState

__all__ = ["Pooled", "ResourcePool"]


class Pooled(Generic[R]):
    """A pool resource and what its care needs to know."""

    __slots__ = ("born", "checked", "resource", "used_at")

    def __init__(self, resource: R, care: Care[R]) -> None:
        self.resource = resource
        self.born = self.used_at = 0.0
        self.checked = 0
        care.mark_new(self)


class ResourcePool(Generic[R]):
    """Idle resources kept for ``run_task``, which runs a task in its caller's task.

    A caller takes an idle pool resource, else a slot for a temporary resource; at the
    ``max_resources`` cap it waits, first come first served, for either.
    """

    __slots__ = ("_arrived", "_callers", "_care", "_completed", "_failed", "_health", "_idle",
                 "_resources", "_run", "_settings", "_tidy", "_waiting")  # fmt: skip

    def __init__(
        self,
        *,
        settings: Settings[R],
        resources: Resources[R],
        care: Care[R],
        run: RunState,
        health: HealthCheck,
        arrived: Callable[[float], None],
        completed: Callable[[Outcome], None],
        failed: Callable[[Outcome], None],
        tidy: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._resources = resources
        self._care = care
        self._run = run
        self._health = health
        self._arrived = arrived
        self._completed = completed
        self._failed = failed
        self._tidy = tidy
        self._idle: list[Pooled[R]] = []
        self._callers: set[asyncio.Task[Any]] = set()  # tasks inside run() now
        self._waiting: deque[asyncio.Future[None]] = deque()  # callers waiting for room
        resources.slots.freed = self._wake_a_caller

    @property
    def available(self) -> int:
        return len(self._idle)

    def runs_in(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` is running a task function through :meth:`run` now."""
        return task in self._callers

    def fill(self, resources: list[R]) -> None:
        self._idle.extend(Pooled(r, self._care) for r in resources)

    async def close(self) -> None:
        """Destroy every idle resource at once (at shutdown, once nothing else holds one)."""
        idle, self._idle = self._idle, []
        await self._resources.destroy_all([entry.resource for entry in idle])
        for waiter in self._waiting:  # nobody can be waiting now; be sure
            if not waiter.done():
                waiter.set_exception(ManagerStoppedError(KILLED))

    async def run(self, fn: Callable[[R], Awaitable[E]]) -> E:
        """Run ``fn`` now on an idle pool resource, or on a temporary one.

        Raises:
            ManagerStoppedError: kill() cancelled it.
            ResourceCreationError: the temporary resource could not be created.
        """
        run = self._run
        queued_at = time.monotonic()
        self._arrived(queued_at)
        entry: Pooled[R] | None = None
        resource: Any = NO_RESOURCE
        healthy = True
        cancel_asked = False  # the caller's cancellation was requested while fn ran
        caller = asyncio.current_task()
        run.hold()
        if caller is not None:
            self._callers.add(caller)
        try:
            with run.killable():
                entry = await self._take()
                if entry is None:  # a slot for a temporary resource
                    try:
                        resource = await self._resources.create()
                    except BaseException as exc:
                        self._resources.slots.free()
                        if isinstance(exc, HookError):
                            raise ResourceCreationError(
                                f"failed to create temporary resource: {exc.error}"
                            ) from exc.error
                        raise
                else:
                    resource = entry.resource
                started_at = time.monotonic()
                cancels = caller.cancelling() if caller is not None else 0
                returned: Any = NOT_CALLED
                try:
                    returned = fn(resource)
                    result: E = await returned
                    cancel_asked = caller is not None and caller.cancelling() > cancels
                except BaseException as exc:
                    error = task_error(fn, returned, exc)
                    healthy = self._health(error)
                    # Counted now: the check below is not the task's time, and its
                    # caller may give up during it.
                    self._failed(outcome(queued_at, started_at, time.monotonic()))
                    if healthy and entry is not None:
                        healthy = False  # until the check says otherwise (it may be cut short)
                        healthy = await self._care.usable_after_failure(entry)
                    if error is exc:
                        raise
                    raise error from None
                self._completed(outcome(queued_at, started_at, time.monotonic()))
                return result
            raise ManagerStoppedError(KILLED)  # kill() cancelled us
        finally:
            self._callers.discard(caller)
            try:
                if entry is not None and cancel_asked:
                    # A reset would await in a task about to be cancelled, and take that
                    # cancellation for its own failure: replace the resource instead,
                    # without awaiting, so the cancellation reaches the caller.
                    self._replace(entry)
                elif entry is not None:
                    await self._give_back(entry, healthy)
                elif resource is not NO_RESOURCE:
                    await self._resources.destroy(resource)  # may re-raise our cancel
            finally:
                self._tidy()  # a run_task-only load would otherwise grow the collector's logs
                run.release()

    async def _take(self) -> Pooled[R] | None:
        """An idle pool resource fit to use, or None with a slot taken for a temporary one."""
        resources = self._resources
        while True:
            if self._idle:
                entry = self._idle.pop()
                try:
                    fit = await self._fit(entry)
                except BaseException:  # cancelled mid-check: its state is unknown
                    self._replace(entry)
                    raise
                return entry if fit else await self._renew()
            if resources.slots.take_now():
                return None
            if not self._room_may_come():
                raise ResourceCreationError(
                    "failed to create temporary resource: every one of max_resources"
                    f" ({self._settings.max_resources}) is held by a base worker and the"
                    " pool is empty"
                )
            assert self._run.loop is not None
            waiter = self._run.loop.create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)

    def _room_may_come(self) -> bool:
        """At the cap: will a pool resource or a slot ever come free?"""
        settings = self._settings
        cap = settings.max_resources
        return cap is None or cap > settings.worker_count or settings.resource_pool_size > 0

    def _wake_a_caller(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _fit(self, entry: Pooled[R], before_task: bool = True) -> bool:
        """Whether a pool resource may be used now; a spent one is replaced.

        Before a task it is cared for only when due (see Care.needs_care); for the
        keepalive, always.
        """
        if before_task and not self._care.needs_care(entry, time.monotonic()):
            return True
        why = await self._care.tend(entry)
        if why is not None:
            self._resources.logger.warning("replacing a pool resource because %s", why)
            self._resources.discard(entry.resource)
            return False
        return True

    async def _renew(self) -> Pooled[R]:
        """A new pool resource for this caller, in place of a spent one being destroyed.

        Raises:
            ResourceCreationError: it could not be created (a refill keeps trying, as
                it does when the caller is cancelled meanwhile).
        """
        resources = self._resources
        try:
            await resources.slots.take()
        except BaseException:  # cancelled waiting for room: the pool is one short
            self._refill()
            raise
        try:
            resource = await resources.create()
        except BaseException as exc:
            resources.slots.free()
            self._refill()  # the pool is one short: keep trying in the background
            if isinstance(exc, HookError):
                raise ResourceCreationError(
                    f"failed to create a pool resource: {exc.error}"
                ) from exc.error
            raise
        return Pooled(resource, self._care)

    async def _give_back(self, entry: Pooled[R], healthy: bool) -> None:
        if not healthy:
            self._resources.note_unhealthy()
            resource = entry.resource
            self._refill()
            await self._resources.destroy(resource)  # may re-raise our caller's cancel
            return
        try:
            why = await self._care.after_task(entry)
        except BaseException:  # cancelled mid-reset: its state is unknown
            self._replace(entry)
            raise
        if why is not None:
            self._resources.logger.warning("replacing a pool resource because %s", why)
            self._replace(entry)
            return
        self._idle.append(entry)  # shutdown destroys the pool once no run() holds one
        self._wake_a_caller()

    def _replace(self, entry: Pooled[R]) -> None:
        """Destroy a spent pool resource (in the background) and create another."""
        self._resources.discard(entry.resource)
        self._refill()

    def _refill(self) -> None:
        if self._run.running:
            self._run.start(self._refill_one, name="tasker_aio: pool refill")

    async def _refill_one(self) -> None:
        run = self._run
        if not run.running:  # restarted after shutdown began (see RunState.start)
            return
        resources = self._resources
        with run.killable():
            await resources.slots.take()
            try:
                resource = await resources.create_with_retry(
                    "pool resource", give_up=lambda: not run.running
                )
            except BaseException:
                resources.slots.free()
                raise
            if resource is NO_RESOURCE:
                resources.slots.free()
                return
            if run.running:
                self._idle.append(Pooled(resource, self._care))
                self._wake_a_caller()
            else:
                await resources.destroy(resource)

    async def keep_alive(self) -> None:
        """Check and recycle idle pool resources (``check_interval``, ``max_resource_age``).

        A holder: shutdown waits until no pool resource is out for its check.
        """
        settings = self._settings
        # Whichever comes first: an idle resource is due at its check or its age.
        period = min(
            p for p in (settings.check_interval, settings.max_resource_age) if p is not None
        )
        run = self._run
        with run.killable():
            while run.running:
                try:
                    async with asyncio.timeout(period):
                        await run.shutdown_started.wait()
                except TimeoutError:
                    pass
                if not run.running:
                    return
                for entry in self._due(time.monotonic()):
                    if entry not in self._idle:
                        continue  # taken meanwhile
                    self._idle.remove(entry)  # nobody may take it while it is checked
                    try:
                        fit = await self._fit(entry, before_task=False)
                    except BaseException:
                        self._replace(entry)  # interrupted mid-check
                        raise
                    if fit:
                        self._idle.append(entry)
                        self._wake_a_caller()
                    else:
                        self._refill()

    def _due(self, now: float) -> list[Pooled[R]]:
        return [
            entry
            for entry in self._idle
            if (due := self._care.next_due(entry)) is not None and due <= now
        ]
