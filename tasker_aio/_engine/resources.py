"""Resources: creating them (with retries), destroying them (shielded), counting them."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic

import anyio

from .._exceptions import ResourceCreationError
from .._types import Logger, R
from .run import RunState

__all__ = ["NO_RESOURCE", "Resources"]

NO_RESOURCE: Any = object()  # a resource may legitimately be None
_CREATE_RETRY_FIRST = 0.05  # seconds before the first retry of a failed on_create
_CREATE_RETRY_CAP = 2.0  # the longest pause between on_create retries


class Resources(Generic[R]):
    """Where every resource comes from and goes to: ``on_create`` and ``on_destroy``.

    Workers, the ``run_task`` pool and start-up all create and destroy through here.
    """

    def __init__(
        self,
        *,
        on_create: Callable[[], Any],
        on_destroy: Callable[[R], Any],
        run: RunState,
        logger: Logger,
    ) -> None:
        self._on_create = on_create
        self._on_destroy = on_destroy
        self._run = run
        self._logger = logger

    async def create(self) -> R:
        """One ``on_create`` call; its error propagates."""
        resource = self._on_create()
        if inspect.isawaitable(resource):
            resource = await resource
        return resource  # type: ignore[no-any-return]

    async def create_with_retry(self, what: str, give_up: Callable[[], bool]) -> Any:
        """A new resource, retrying with capped backoff; NO_RESOURCE once ``give_up()``."""
        attempt = 0
        while True:
            try:
                return await self.create()
            except Exception as exc:
                attempt += 1
                self._logger.error("on_create failed for a %s (attempt %d): %r", what, attempt, exc)
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
        """
        created: list[R] = []
        failures: list[Exception] = []

        async def create_one() -> None:
            try:
                created.append(await self.create())
            except Exception as exc:
                failures.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(create_one)
        except BaseException:
            await self.destroy_all(created)
            raise
        if failures:
            await self.destroy_all(created)
            raise ResourceCreationError(
                f"failed to initialize resources: {failures[0]}"
            ) from failures[0]
        return created

    async def destroy(self, resource: R) -> None:
        """Run on_destroy to its end, even if the calling task is cancelled meanwhile.

        anyio's shield stops scope cancellations; a native ``Task.cancel()`` of the
        caller (say, of a run_task caller) is held back until on_destroy has finished,
        then re-raised. Errors are logged.
        """
        with anyio.CancelScope(shield=True):
            try:
                returned = self._on_destroy(resource)
                if inspect.isawaitable(returned):
                    await _to_the_end(returned)
            except Exception as exc:
                self._logger.error("on_destroy failed for %r: %r", resource, exc)

    async def destroy_all(self, resources: list[R]) -> None:
        """Destroy every resource; a cancellation meanwhile is re-raised at the end."""
        cancelled: BaseException | None = None
        for resource in resources:
            try:
                await self.destroy(resource)
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            raise cancelled


async def _to_the_end(awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` to its end; a cancellation of our task meanwhile waits for it."""
    inner = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not inner.done():
        try:
            await asyncio.shield(inner)
        except asyncio.CancelledError as exc:
            if inner.cancelled():
                raise
            cancelled = exc  # keep waiting; re-raise once it is done
    if cancelled is not None:
        raise cancelled
    return inner.result()
