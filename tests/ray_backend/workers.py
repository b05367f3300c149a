"""What the conformance suite runs on: one resource class and one coordination board.

Both are plain classes used as they are by the local backend and as Ray actors by the
actor backend, so the test bodies cannot tell the two apart: a task awaits
``resource.method(...)`` either way, and the board (its events live in one process,
the driver's or a Ray actor's) is what a task notes its progress on and waits at.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from typing import Any, Protocol


class Broken(Exception):
    """A local resource broke (an actor breaks by dying instead)."""


class BoardLike(Protocol):
    """The board's interface, the same locally and through a Ray actor."""

    async def note(self, tag: str) -> int: ...
    async def wait(self, gate: str) -> None: ...
    async def open(self, gate: str) -> None: ...
    async def notes(self) -> list[str]: ...
    async def until(self, tag: str, count: int = 1) -> None: ...
    async def reset(self) -> None: ...


class Board:
    """Notes tags in arrival order and holds gates; every method is async."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._notes: list[str] = []
        self._counts: Counter[str] = Counter()
        self._gates: dict[str, asyncio.Event] = {}
        self._changed: asyncio.Event | None = None

    def _gate(self, gate: str) -> asyncio.Event:
        return self._gates.setdefault(gate, asyncio.Event())

    async def note(self, tag: str) -> int:
        """Record ``tag``; return how often it has been noted, this time included."""
        self._notes.append(tag)
        self._counts[tag] += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return self._counts[tag]

    async def wait(self, gate: str) -> None:
        await self._gate(gate).wait()

    async def open(self, gate: str) -> None:
        self._gate(gate).set()

    async def notes(self) -> list[str]:
        return list(self._notes)

    async def until(self, tag: str, count: int = 1) -> None:
        """Wait until ``tag`` has been noted ``count`` times (woken by each note)."""
        while self._counts[tag] < count:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    async def reset(self) -> None:
        """Forget everything; release whoever still waits (a caller that died, say)."""
        for gate in self._gates.values():
            gate.set()
        if self._changed is not None:
            self._changed.set()
        self._clear()


class RemoteBoard:
    """A Board living in a Ray actor, with the Board's async interface; picklable."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def note(self, tag: str) -> int:
        count: int = await self.handle.note.remote(tag)
        return count

    async def wait(self, gate: str) -> None:
        await self.handle.wait.remote(gate)

    async def open(self, gate: str) -> None:
        await self.handle.open.remote(gate)

    async def notes(self) -> list[str]:
        notes: list[str] = await self.handle.notes.remote()
        return notes

    async def until(self, tag: str, count: int = 1) -> None:
        await self.handle.until.remote(tag, count)

    async def reset(self) -> None:
        await self.handle.reset.remote()


class Worker:
    """The conformance resource. ``remote`` says whether it runs as a Ray actor."""

    def __init__(self, board: BoardLike, remote: bool) -> None:
        self.board = board
        self.remote = remote
        self.ident = uuid.uuid4().hex[:8]
        self.cancelled: list[str] = []

    async def whoami(self) -> str:
        return self.ident

    async def echo(self, value: Any) -> Any:
        return value

    async def step(self, tag: str, gate: str | None = None) -> str:
        """Note ``tag``, wait at ``gate`` if given; remember ``tag`` if cancelled.

        The cancellation is kept here, not noted on the board: Ray's recursive cancel
        may also cancel a call that the cancellation handler makes (see docs/ray.md).
        """
        await self.board.note(tag)
        try:
            if gate is not None:
                await self.board.wait(gate)
        except asyncio.CancelledError:
            self.cancelled.append(tag)
            raise
        return tag

    async def cancellations(self) -> list[str]:
        """The tags of the calls of ``step`` that were cancelled on this resource."""
        return list(self.cancelled)

    async def flaky(self, key: str, failures: int) -> int:
        """Fail with ValueError the first ``failures`` times ``key`` runs, then succeed."""
        attempt = await self.board.note(key)
        if attempt <= failures:
            raise ValueError(f"{key} attempt {attempt}")
        return attempt

    async def break_(self, key: str, times: int) -> str:
        """Break this resource the first ``times`` times ``key`` runs; else who ran it."""
        if await self.board.note(key) <= times:
            if self.remote:
                os._exit(1)  # the actor's process dies mid-call
            raise Broken(key)
        return self.ident

    def pid(self) -> int:
        return os.getpid()

    async def hang(self, tag: str, seconds: float) -> str:
        """Note ``tag``, then block the thread: no cancellation can reach this call."""
        await self.board.note(tag)
        time.sleep(seconds)  # noqa: ASYNC251 -- blocking the loop is the point
        return "unblocked"

    async def close(self) -> None:
        await self.board.note(f"closed:{self.ident}")


class SyncWorker:
    """An actor with sync methods only: Ray runs its calls one at a time in a thread."""

    def __init__(self, close_seconds: float = 0.0) -> None:
        self.close_seconds = close_seconds

    def pid(self) -> int:
        return os.getpid()

    def echo(self, value: Any) -> Any:
        return value

    def block(self, seconds: float) -> str:
        time.sleep(seconds)
        return "unblocked"

    def close(self) -> None:
        time.sleep(self.close_seconds)


class BadInit:
    """An actor whose constructor fails: it never becomes ready."""

    def __init__(self) -> None:
        raise RuntimeError("cannot load the model")


class Unplaceable:
    """An actor the tests create with resources no node has."""


class NodeWorker:
    """An actor that says which node it runs on (for the multi-node tests)."""

    async def node(self) -> str:
        import ray

        node_id: str = ray.get_runtime_context().get_node_id()
        return node_id

    async def work(self, item: int, seconds: float) -> tuple[int, str]:
        """Take ``seconds``, then return ``item`` and the node that did it."""
        await asyncio.sleep(seconds)
        return item, await self.node()
