"""map(): a bounded, lazily fed stream of task results."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Generic

from ._engine.admission import Admission
from ._engine.queues import NEW, Task
from ._exceptions import ManagerStoppedError
from ._types import E, R, T

__all__ = ["MapIterator"]


def _bind(fn: Callable[[R, T], Awaitable[E]], item: T) -> Callable[[R], Awaitable[E]]:
    return lambda resource: fn(resource, item)


class MapIterator(Generic[R, T, E]):
    """The async iterator returned by :meth:`TaskManager.map`.

    Dropping it (``break`` out of ``async for``) or ``await it.aclose()`` cancels the
    tasks it still has in flight: queued ones are discarded, running ones cancelled.
    """

    def __init__(
        self,
        admission: Admission,
        forget: Callable[[Task[Any, Any]], None],
        fn: Callable[[R, T], Awaitable[E]],
        items: Iterable[T] | AsyncIterable[T],
        priority: bool,
        ordered: bool,
        max_in_flight: int,
    ) -> None:
        self._in_flight: deque[Task[R, E]] = deque()  # submission order
        self._admission = admission
        self._forget = forget
        self._fn = fn
        self._sync: Any = None
        self._async: AsyncIterator[T] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        elif isinstance(items, Iterable):
            self._sync = iter(items)
        else:
            raise TypeError(f"items must be an iterable or async iterable, got {items!r}")
        self._route = admission.route(priority, once=False)
        self._ordered = ordered
        self._limit = max_in_flight
        self._done: deque[Task[R, E]] = deque()  # completion order (unordered)
        self._wakeup: asyncio.Event | None = None
        self._exhausted = False
        self._closed = False
        self._refused: BaseException | None = None  # raised once in-flight work is yielded
        self._busy = False  # a consumer is inside __anext__

    def __repr__(self) -> str:
        state = "closed" if self._closed else "exhausted" if self._exhausted else "pulling"
        return (
            f"<MapIterator {state} in_flight={len(self._in_flight)}/{self._limit}"
            f" ordered={self._ordered}>"
        )

    def __aiter__(self) -> MapIterator[R, T, E]:
        return self

    async def __anext__(self) -> E:
        if self._busy:  # as an async generator refuses to be run twice at once
            raise RuntimeError(
                "anext(): this map() iterator is already being awaited by another task;"
                " give each consumer its own map()"
            )
        if self._closed:
            raise StopAsyncIteration
        self._busy = True
        try:
            await self._fill()
            if not self._in_flight:
                self._closed = True
                if self._refused is not None:
                    raise self._refused
                raise StopAsyncIteration
            return await self._next_result()  # raises the task's error at its position
        except StopAsyncIteration:
            raise
        except BaseException:
            self._cancel_in_flight()
            raise
        finally:
            self._busy = False

    async def _fill(self) -> None:
        fn = self._fn
        while not self._exhausted and len(self._in_flight) < self._limit:
            if self._async is not None:
                try:
                    item = await anext(self._async)
                except StopAsyncIteration:
                    self._exhausted = True
                    return
            else:
                try:
                    item = next(self._sync)
                except StopIteration:
                    self._exhausted = True
                    return
            # Unwatched: the futures stay inside the iterator, which drops their tasks.
            task: Task[R, E] = self._admission.offer(_bind(fn, item), self._route, False)
            try:
                if task.state == NEW:
                    await self._admission.wait_for_room(task)
            except ManagerStoppedError as exc:  # stop(): finish what was accepted first
                self._exhausted = True
                self._refused = exc
                return
            self._in_flight.append(task)
            if not self._ordered:
                task.future.add_done_callback(partial(self._on_done, task))

    def _on_done(self, task: Task[R, E], _: object) -> None:
        self._done.append(task)
        if self._wakeup is not None:
            self._wakeup.set()

    async def _next_result(self) -> E:
        if self._ordered:
            task = self._in_flight[0]
            result = await task.future
            self._in_flight.popleft()
            return result
        while not self._done:
            self._wakeup = asyncio.Event()
            await self._wakeup.wait()
        task = self._done.popleft()
        self._in_flight.remove(task)
        return task.future.result()

    def _cancel_in_flight(self) -> None:
        self._closed = True
        while self._in_flight:
            task = self._in_flight.popleft()
            future = task.future
            # Settle it here and now, so nothing is left queued once we return; a
            # future already cancelled was the one our consumer awaited.
            if future.cancel() or future.cancelled():
                self._forget(task)
            else:
                future.exception()  # dropped unread: mark it retrieved, asyncio won't log it
        self._done.clear()

    async def aclose(self) -> None:
        """Stop iterating and cancel every task still in flight."""
        self._cancel_in_flight()

    def __del__(self) -> None:
        if self._in_flight:
            self._cancel_in_flight()
