"""Publishing lifecycle events to the subscribers of ``TaskManager.events()``."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from .._events import Event, EventsLost

__all__ = ["EventBus", "EventStream"]


class EventBus:
    """Hands each event to every subscriber; with none, nothing is built or kept.

    Emitters check :attr:`active` before they build an event, so a manager nobody
    watches pays one attribute read at each (rare, never per task) emission point.
    """

    __slots__ = ("_closed", "_streams")

    def __init__(self) -> None:
        self._streams: list[EventStream] = []
        self._closed = False

    @property
    def active(self) -> bool:
        return bool(self._streams)

    def publish(self, event: Event) -> None:
        for stream in self._streams:
            stream.put(event)

    def emit(self, build: Callable[[float], Event]) -> None:
        """Publish ``build(now)`` if anyone listens."""
        if self._streams:
            self.publish(build(time.monotonic()))

    def subscribe(self, buffer: int) -> EventStream:
        stream = EventStream(self, buffer)
        if self._closed:
            stream.end()
        else:
            self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def close(self) -> None:
        """The manager is over: every stream ends once it has handed out what it holds."""
        self._closed = True
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.end()


class EventStream:
    """An async iterator of one subscriber's events, from ``TaskManager.events()``.

    It holds at most ``buffer`` events: when the subscriber falls behind, the oldest
    are dropped and the next event it reads is an :class:`~tasker_aio.EventsLost` with
    their number. It ends after :class:`~tasker_aio.ShutdownFinished`, or when closed
    (``break`` out of ``async for``, or ``await stream.aclose()``).
    """

    __slots__ = ("_buffer", "_bus", "_ended", "_events", "_lost", "_waiter")

    def __init__(self, bus: EventBus, buffer: int) -> None:
        self._bus = bus
        self._buffer = buffer
        self._events: deque[Event] = deque()
        self._lost = 0
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<EventStream held={len(self._events)} lost={self._lost} ended={self._ended}>"

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._events and not self._lost:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self._lost:
            lost, self._lost = self._lost, 0
            return EventsLost(at=time.monotonic(), count=lost)
        return self._events.popleft()

    async def aclose(self) -> None:
        """Stop receiving events."""
        self._bus.unsubscribe(self)
        self.end()
        self._events.clear()

    def put(self, event: Event) -> None:
        if len(self._events) >= self._buffer:
            self._events.popleft()
            self._lost += 1
        self._events.append(event)
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
