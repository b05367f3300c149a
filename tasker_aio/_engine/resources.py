"""Resources: creating them (with retries), destroying them (shielded), counting them."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic

import anyio

from .._exceptions import ResourceCreationError
from .._types import R
from .hooks import HookError, Hooks
from .run import RunState

__all__ = ["NO_RESOURCE", "Resources"]

NO_RESOURCE: Any = object()  # a resource may legitimately be None
_CREATE_RETRY_FIRST = 0.05  # seconds before the first retry of a failed on_create
_CREATE_RETRY_CAP = 2.0  # the longest pause between on_create retries


class Resources(Generic[R]):
    """Where every resource comes from and goes to: ``on_create`` and ``on_destroy``.

    Workers, the ``run_task`` pool and start-up all create and destroy through here.
    Both hooks go through :class:`Hooks`: whatever they raise (a stray
    ``CancelledError`` included) is their failure, never the caller's.
    """

    __slots__ = ("_hooks", "_on_create", "_on_destroy", "_run")

    def __init__(
        self,
        *,
        on_create: Callable[[], Any],
        on_destroy: Callable[[R], Any],
        run: RunState,
        hooks: Hooks,
    ) -> None:
        self._on_create = on_create
        self._on_destroy = on_destroy
        self._run = run
        self._hooks = hooks

    async def create(self) -> R:
        """One ``on_create`` call.

        Raises:
            HookError: it failed; ``error`` is what it raised.
            asyncio.CancelledError: the calling task was cancelled.
        """
        resource: R = await self._hooks.call_async("on_create", self._on_create)
        return resource

    async def create_with_retry(self, what: str, give_up: Callable[[], bool]) -> Any:
        """A new resource, retrying with capped backoff; NO_RESOURCE once ``give_up()``.

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
                delay = min(_CREATE_RETRY_CAP, _CREATE_RETRY_FIRST * 2 ** min(attempt - 1, 32))
                if self._run.running:  # wake early when shutdown begins
                    with anyio.move_on_after(delay):
                        await self._run.shutdown_started.wait()
                else:
                    await anyio.sleep(delay)

    async def create_all(self, count: int) -> list[R]:
        """``count`` resources created concurrently, or none.

        Raises:
            ResourceCreationError: an ``on_create`` failed; the others were destroyed.
            asyncio.CancelledError: the caller was cancelled; every creation was
                cancelled and what they made was destroyed.
        """
        loop = asyncio.get_running_loop()
        creations = [
            loop.create_task(self.create(), name="tasker_aio: on_create") for _ in range(count)
        ]
        try:
            await asyncio.wait(creations)
        except BaseException:
            for creation in creations:
                creation.cancel()
            await _to_the_end(self._collect(creations))
            raise
        created, failures = self._outcomes(creations)
        if len(created) < count:
            await self.destroy_all(created)
            cause = failures[0] if failures else asyncio.CancelledError("on_create was cancelled")
            raise ResourceCreationError(
                f"failed to initialize resources: {str(cause) or repr(cause)}"
            ) from cause
        return created

    @staticmethod
    def _outcomes(creations: list[asyncio.Task[R]]) -> tuple[list[R], list[BaseException]]:
        created: list[R] = []
        failures: list[BaseException] = []
        for creation in creations:
            if creation.cancelled():
                continue
            error = creation.exception()
            if error is None:
                created.append(creation.result())
            else:
                failures.append(error.error if isinstance(error, HookError) else error)
        return created, failures

    async def _collect(self, creations: list[asyncio.Task[R]]) -> None:
        """Wait for cancelled creations to end; destroy whatever they made."""
        await asyncio.wait(creations)
        created, _ = self._outcomes(creations)
        await self.destroy_all(created)

    async def destroy(self, resource: R) -> None:
        """Run ``on_destroy`` to its end, even if the calling task is cancelled meanwhile.

        Its failures are logged. A cancellation of the caller (anyio's, or a native
        ``Task.cancel()``) is held back until ``on_destroy`` has finished, then re-raised.
        A plain-function ``on_destroy`` runs at once, without a pause of the loop.
        """
        pending = self._begin_destroy(resource)
        if pending is not None:
            with anyio.CancelScope(shield=True):
                await _to_the_end(pending)

    async def destroy_all(self, resources: list[R]) -> None:
        """Destroy every resource, concurrently; a cancellation meanwhile is re-raised."""
        pending = [p for p in map(self._begin_destroy, resources) if p is not None]
        if pending:
            with anyio.CancelScope(shield=True):
                await _to_the_end(_gather(*pending))

    def _begin_destroy(self, resource: R) -> Awaitable[None] | None:
        """Call ``on_destroy``; what is left to await of it, if anything."""
        try:
            returned = self._on_destroy(resource)
        except BaseException as exc:  # contained: see Hooks
            self._hooks.logger.error("on_destroy failed for %r: %r", resource, exc)
            return None
        if not inspect.isawaitable(returned):
            return None
        return self._end_destroy(resource, returned)

    async def _end_destroy(self, resource: R, returned: Awaitable[Any]) -> None:
        try:
            await self._hooks.call_async("on_destroy", lambda: returned)
        except HookError as exc:
            self._hooks.logger.error("on_destroy failed for %r: %r", resource, exc.error)
        except asyncio.CancelledError:  # its own task was cancelled from outside
            self._hooks.logger.error("on_destroy for %r was cancelled", resource)


async def _gather(*awaitables: Awaitable[Any]) -> None:
    await asyncio.gather(*awaitables)


async def _to_the_end(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` in a task of its own, to its end.

    A cancellation of the calling task meanwhile waits for it, then is re-raised. If
    the inner task is itself cancelled (an application cancelling every task), it is
    over: nothing to wait for.
    """
    inner = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not inner.done():
        try:
            await asyncio.shield(inner)
        except asyncio.CancelledError as exc:
            if inner.done():
                break
            cancelled = exc  # keep waiting; re-raise once it is done
    if cancelled is not None:
        raise cancelled
    return None if inner.cancelled() else inner.result()
