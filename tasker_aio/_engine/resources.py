"""Resources: where every resource comes from and goes to.

Every resource is counted in a slot (see :mod:`.slots`): creating takes one first,
destroying gives it back.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic

import anyio

from .._events import ResourceCheckFailed, ResourceCreated, ResourceDestroyed
from .._exceptions import ResourceCreationError
from .._types import R
from .events import EventBus
from .hooks import HookError, Hooks
from .run import RunState
from .slots import Slots

__all__ = ["NO_RESOURCE", "Resources"]

NO_RESOURCE: Any = object()  # a resource may legitimately be None
_CREATE_RETRY_FIRST = 0.05  # seconds before the first retry of a failed on_create
_CREATE_RETRY_CAP = 2.0  # the longest pause between on_create retries


def default_create_backoff(attempt: int) -> float:
    """50 ms doubling to 2 s: the pause after failed ``on_create`` number ``attempt``."""
    return float(min(_CREATE_RETRY_CAP, _CREATE_RETRY_FIRST * 2 ** min(attempt - 1, 32)))


class Resources(Generic[R]):
    """Creating (with retries), checking, resetting and destroying resources; their slots.

    Every hook goes through :class:`Hooks`: whatever it raises (a stray
    ``CancelledError`` included) is its failure, never the caller's.

    Attributes:
        slots: the live resources and their cap (``max_resources``).
        epoch: bumped by every unhealthy failure; a resource last checked in an older
            epoch is checked again before its next task (``check_resource``).
    """

    __slots__ = ("_abandoned", "_check", "_create_backoff", "_destroy_timeout", "_events",
                 "_hooks", "_on_create", "_on_destroy", "_on_reset", "_run", "epoch",
                 "slots")  # fmt: skip

    def __init__(
        self,
        *,
        on_create: Callable[[], Any],
        on_destroy: Callable[[R], Any],
        run: RunState,
        hooks: Hooks,
        events: EventBus | None = None,
        on_reset: Callable[[R], Any] | None = None,
        check_resource: Callable[[R], Any] | None = None,
        max_resources: int | None = None,
        create_backoff: Callable[[int], float] | None = None,
        destroy_timeout: float | None = None,
    ) -> None:
        self._on_create = on_create
        self._on_destroy = on_destroy
        self._on_reset = on_reset
        self._check = check_resource
        self._run = run
        self._hooks = hooks
        self._events = events if events is not None else EventBus()
        self._create_backoff = create_backoff
        self._destroy_timeout = destroy_timeout
        self._abandoned: set[asyncio.Future[Any]] = set()  # on_destroy calls given up on
        self.slots = Slots(max_resources, self._loop)
        self.epoch = 0

    @property
    def logger(self) -> Any:
        """The manager's (safe) logger."""
        return self._hooks.logger

    def _loop(self) -> asyncio.AbstractEventLoop:
        assert self._run.loop is not None, "the manager is not running"
        return self._run.loop

    # -------------------------------------------------------------------- creation

    async def create(self) -> R:
        """One ``on_create`` call, in a slot the caller took.

        Raises:
            HookError: it failed; ``error`` is what it raised.
            asyncio.CancelledError: the calling task was cancelled.
        """
        resource: R = await self._hooks.call_async("on_create", self._on_create)
        if self._events.active:
            self._events.publish(
                ResourceCreated(at=time.monotonic(), live_resources=self.slots.live)
            )
        return resource

    async def create_with_retry(self, what: str, give_up: Callable[[], bool]) -> Any:
        """A new resource in a slot the caller took, retrying with ``create_backoff``.

        Returns NO_RESOURCE once ``give_up()`` says so after a failure; the slot is then
        the caller's to free.

        Raises:
            asyncio.CancelledError: the calling task was cancelled.
        """
        attempt = 0
        while True:
            try:
                return await self.create()
            except HookError as exc:
                attempt += 1
                self._hooks.logger.error(
                    "on_create failed for a %s (attempt %d): %r", what, attempt, exc.error
                )
                if give_up():
                    return NO_RESOURCE
                delay = self.create_delay(attempt)
                if self._run.running:  # wake early when shutdown begins
                    try:
                        async with asyncio.timeout(delay):
                            await self._run.shutdown_started.wait()
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(delay)

    def create_delay(self, attempt: int) -> float:
        """Seconds to wait after failed creation number ``attempt`` (``create_backoff``)."""
        backoff = self._create_backoff
        if backoff is None:
            return default_create_backoff(attempt)
        delay: Any = self._hooks.call("create_backoff", backoff, attempt, default=None)
        try:
            seconds = float(delay)
        except BaseException:
            seconds = math.nan
        if not 0 <= seconds < math.inf:
            if delay is not None:
                self._hooks.logger.error(
                    "create_backoff %r returned %r, not a delay in seconds", backoff, delay
                )
            return default_create_backoff(attempt)
        return seconds

    async def create_all(self, count: int) -> list[R]:
        """``count`` resources created concurrently, or none (start-up).

        Raises:
            ResourceCreationError: an ``on_create`` failed; the others were destroyed.
            asyncio.CancelledError: the caller was cancelled; every creation was
                cancelled and what they made was destroyed.
        """
        assert self._run.loop is not None
        self.slots.take_all(count)  # the config made sure they fit under max_resources
        creations = [
            self._run.loop.create_task(self.create(), name="tasker_aio: on_create")
            for _ in range(count)
        ]
        try:
            await asyncio.wait(creations)
        except BaseException:
            for creation in creations:
                creation.cancel()
            await _hold_through(self._collect(creations))
            raise
        created, failures = self._sort(creations)
        if len(created) < count:
            for _ in range(count - len(created)):
                self.slots.free()
            await self.destroy_all(created)
            cause = failures[0] if failures else asyncio.CancelledError("on_create was cancelled")
            raise ResourceCreationError(
                f"failed to initialize resources: {str(cause) or repr(cause)}"
            ) from cause
        return created

    @staticmethod
    def _sort(creations: list[asyncio.Task[R]]) -> tuple[list[R], list[BaseException]]:
        created: list[R] = []
        failures: list[BaseException] = []
        for creation in creations:
            if not creation.done() or creation.cancelled():
                continue
            error = creation.exception()
            if error is None:
                created.append(creation.result())
            else:
                failures.append(error.error if isinstance(error, HookError) else error)
        return created, failures

    async def _collect(self, creations: list[asyncio.Task[R]]) -> None:
        """Wait (up to ``destroy_timeout``) for cancelled creations; destroy what they made."""
        if self._destroy_timeout is None:
            await asyncio.wait(creations)
        else:
            await asyncio.wait(creations, timeout=self._destroy_timeout)
        created, _ = self._sort(creations)
        for creation in creations:
            if not creation.done():  # ignores cancellation: destroy what it makes, later
                self._hooks.logger.error(
                    "on_create still running %ss after it was cancelled; abandoned",
                    self._destroy_timeout,
                )
                creation.add_done_callback(self._adopt_late)
            elif creation.cancelled() or creation.exception() is not None:
                self.slots.free()
        await self.destroy_all(created)

    def _adopt_late(self, creation: asyncio.Task[R]) -> None:
        if creation.cancelled() or creation.exception() is not None:
            self.slots.free()
        else:
            self.discard(creation.result())

    # ---------------------------------------------------------------- destruction

    async def destroy(self, resource: R) -> None:
        """Destroy ``resource`` and free its slot, waiting for ``on_destroy`` to end.

        Its failures are logged; after ``destroy_timeout`` it is abandoned (logged). A
        cancellation of the caller meanwhile is held back until then, and re-raised.
        """
        gone = self.discard(resource)
        if gone is not None:
            with anyio.CancelScope(shield=True):  # kill() must not interrupt it either
                await _hold_through(gone)

    async def destroy_all(self, resources: list[R]) -> None:
        """Destroy every resource, concurrently; a cancellation meanwhile is re-raised."""
        pending = [gone for gone in map(self.discard, resources) if gone is not None]
        if pending:
            with anyio.CancelScope(shield=True):
                await _hold_through(asyncio.gather(*pending))

    def discard(self, resource: R) -> asyncio.Future[None] | None:
        """Start destroying ``resource``; what to await for its end, if it has not ended.

        A plain-function ``on_destroy`` runs now. An async one runs as a task of its own
        that nothing can cancel by accident; its slot is freed when it ends or when it
        is abandoned after ``destroy_timeout``. Shutdown waits for it (a holder).
        """
        try:
            returned = self._on_destroy(resource)
        except BaseException as exc:  # contained: see Hooks
            self._hooks.logger.error("on_destroy failed for %r: %r", resource, exc)
            self._destroyed(abandoned=False)
            return None
        if not inspect.isawaitable(returned):
            self._destroyed(abandoned=False)
            return None
        run = self._run
        assert run.loop is not None
        run.hold()
        gone: asyncio.Future[None] = run.loop.create_future()
        inner = asyncio.ensure_future(self._end_destroy(resource, returned))
        timer = (
            None
            if self._destroy_timeout is None
            else run.loop.call_later(self._destroy_timeout, self._abandon, resource, inner, gone)
        )

        def ended(_: object) -> None:
            if timer is not None:
                timer.cancel()
            self._settle(gone)

        inner.add_done_callback(ended)
        return gone

    def _settle(self, gone: asyncio.Future[None], abandoned: bool = False) -> None:
        if not gone.done():
            gone.set_result(None)
            self._destroyed(abandoned)
            self._run.release()

    def _destroyed(self, abandoned: bool) -> None:
        self.slots.free()
        if self._events.active:
            self._events.publish(
                ResourceDestroyed(
                    at=time.monotonic(), abandoned=abandoned, live_resources=self.slots.live
                )
            )

    def _abandon(self, resource: R, inner: asyncio.Future[Any], gone: asyncio.Future[None]) -> None:
        self._hooks.logger.error(
            "on_destroy for %r still running after destroy_timeout (%ss); abandoned",
            resource,
            self._destroy_timeout,
        )
        self._abandoned.add(inner)  # keep a reference until it ends on its own
        inner.add_done_callback(self._abandoned.discard)
        self._settle(gone, abandoned=True)

    async def _end_destroy(self, resource: R, returned: Awaitable[Any]) -> None:
        try:
            await self._hooks.call_async("on_destroy", lambda: returned)
        except HookError as exc:
            self._hooks.logger.error("on_destroy failed for %r: %r", resource, exc.error)
        except asyncio.CancelledError:  # its own task was cancelled from outside
            self._hooks.logger.error("on_destroy for %r was cancelled", resource)

    # ---------------------------------------------------------------------- care

    async def check(self, resource: R) -> bool:
        """Ask ``check_resource`` whether ``resource`` is usable; False if it fails.

        Raises:
            asyncio.CancelledError: the calling task was cancelled.
        """
        if self._check is None:
            return True
        error: BaseException | None = None
        try:
            usable = await self._hooks.call_async("check_resource", self._check, resource)
        except HookError as exc:
            self._hooks.logger.warning("check_resource failed for %r: %r", resource, exc.error)
            usable, error = False, exc.error
        else:
            if not usable:
                self._hooks.logger.warning("check_resource says %r is not usable", resource)
        if not usable and self._events.active:
            self._events.publish(ResourceCheckFailed(at=time.monotonic(), error=error))
        return bool(usable)

    async def reset(self, resource: R) -> bool:
        """Run ``on_reset`` on ``resource``; False if it failed (the resource is spent).

        Raises:
            asyncio.CancelledError: the calling task was cancelled.
        """
        if self._on_reset is None:
            return True
        try:
            await self._hooks.call_async("on_reset", self._on_reset, resource)
        except HookError as exc:
            self._hooks.logger.warning(
                "on_reset failed for %r: %r; replacing it", resource, exc.error
            )
            return False
        return True

    def note_unhealthy(self) -> None:
        """An unhealthy failure: every resource is checked again before its next task."""
        self.epoch += 1


async def _hold_through(awaitable: Awaitable[Any]) -> None:
    """Await ``awaitable`` to its end; a cancellation of our task meanwhile waits for it.

    The cancellation is re-raised once it is over. (A cancellation of ``awaitable``
    itself, from outside, ends the wait.)
    """
    inner = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not inner.done():
        try:
            await asyncio.wait((inner,))
        except asyncio.CancelledError as exc:
            cancelled = exc  # keep waiting; re-raise once it is done
    if not inner.cancelled():
        inner.exception()  # retrieved: a failure was logged where it happened
    if cancelled is not None:
        raise cancelled
