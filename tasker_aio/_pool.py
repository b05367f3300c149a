"""The resource pool behind run_task: take, run, give back or replace."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic

import anyio

from ._exceptions import ManagerStoppedError, ResourceCreationError
from ._metrics import outcome
from ._types import E, R
from ._worker import NO_RESOURCE

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["ResourcePool"]


class ResourcePool(Generic[R, E]):
    """Idle resources kept for :meth:`TaskManager.run_task`."""

    __slots__ = ("_idle", "_manager")

    def __init__(self, manager: TaskManager[R, E]) -> None:
        self._manager = manager
        self._idle: list[R] = []

    @property
    def available(self) -> int:
        return len(self._idle)

    def fill(self, resources: list[R]) -> None:
        self._idle.extend(resources)

    async def close(self) -> None:
        """Destroy every idle resource (at shutdown, once nothing else holds one)."""
        while self._idle:
            await self._manager._destroy(self._idle.pop())

    async def run(self, fn: Callable[[R], Awaitable[E]]) -> E:
        m = self._manager
        queued_at = time.monotonic()
        m._arrived(queued_at)
        resource: Any = self._idle.pop() if self._idle else NO_RESOURCE
        pooled = resource is not NO_RESOURCE
        healthy = True
        m._holders += 1
        try:
            with m._killable():
                if not pooled:
                    try:
                        resource = await m._make_resource()
                    except Exception as exc:
                        raise ResourceCreationError(
                            f"failed to create temporary resource: {exc}"
                        ) from exc
                started_at = time.monotonic()
                returned: Any = NO_RESOURCE
                try:
                    returned = fn(resource)
                    result: E = await returned
                except BaseException as exc:
                    error = m._task_error(fn, returned, exc)
                    healthy = m._is_healthy(error)
                    m._failed(outcome(queued_at, started_at, time.monotonic()))
                    if error is exc:
                        raise
                    raise error from None
                m._completed(outcome(queued_at, started_at, time.monotonic()))
                return result
            raise ManagerStoppedError("task manager was killed")  # kill() cancelled us
        finally:
            try:
                if resource is not NO_RESOURCE:
                    if pooled and healthy:
                        self._idle.append(resource)
                    else:
                        try:
                            await m._destroy(resource)  # may re-raise the caller's cancel
                        finally:
                            if pooled:
                                self._refill()
            finally:
                m._holders -= 1
                m._check_quiet()

    def _refill(self) -> None:
        m = self._manager
        if m.state != "running" or m._tg is None:
            return
        m._holders += 1
        m._tg.start_soon(self._refill_one)

    async def _refill_one(self) -> None:
        m = self._manager
        resource: Any = NO_RESOURCE
        try:
            with anyio.CancelScope(shield=True):
                with m._killable():
                    resource = await m._create_with_retry(
                        "pool resource", give_up=lambda: m.state != "running"
                    )
                if resource is not NO_RESOURCE:
                    if m.state == "running":
                        self._idle.append(resource)
                    else:
                        await m._destroy(resource)
        finally:
            m._holders -= 1
            m._check_quiet()
