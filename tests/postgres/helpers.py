"""Helpers for the PostgreSQL suite: a test's view of the server, a connection ledger."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from examples.postgres_hooks import Connection, close_connection
from tasker_aio import Config, TaskManager

from .server import PgServer

__all__ = [
    "WAIT",
    "Connections",
    "Opened",
    "PgTest",
    "backend",
    "eventually",
    "manager",
]

WAIT = 10.0  # seconds: the longest any awaited condition may take before the test fails

_TABLE_NUMBERS = itertools.count()  # table names are unique across the run's tests


async def backend(conn: Connection) -> int:
    """A task: the pid of the server process serving ``conn``."""
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


def manager(**fields: Any) -> TaskManager[Connection, Any]:
    """A TaskManager over ``Config(**fields)``, on asyncpg connections."""
    return TaskManager[Connection, Any](Config(**fields))


async def eventually(condition: Callable[[], bool], *, what: str) -> None:
    """Poll ``condition`` (at most :data:`WAIT`): only for engine state with no event to
    wait on, such as the pool being refilled in the background.
    """
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT} s for {what}")
        await asyncio.sleep(0.002)


class PgTest:
    """One test's view of the shared server: its own ``application_name`` and tables.

    Every connection :meth:`connect` opens carries the test's ``application_name``, so
    counts and terminations touch only this test's backends. Tables made by
    :meth:`table` are dropped when the test ends.
    """

    def __init__(self, server: PgServer, application_name: str) -> None:
        self.server = server
        self.application_name = application_name
        self._tables: list[str] = []

    async def connect(self) -> Connection:
        """Open a connection over TCP to 127.0.0.1 (usable as ``on_create``)."""
        return await self.server.connect(self.application_name)

    async def count(self) -> int:
        """This test's backends in ``pg_stat_activity`` right now."""
        return await self.server.count_connections(self.application_name)

    async def terminate_idle(self) -> int:
        """``pg_terminate_backend`` every idle backend of this test; return how many."""
        return await self.server.terminate(self.application_name)

    async def wait_for_count(self, condition: Callable[[int], bool], *, what: str) -> int:
        """Poll this test's backend count until ``condition`` holds (at most :data:`WAIT`)."""
        return await self.server.wait_for_connections(
            self.application_name, condition, what=what, seconds=WAIT
        )

    def table_name(self) -> str:
        """A new table name for this test; the table, if made, is dropped after it."""
        name = f"tasker_test_{next(_TABLE_NUMBERS)}"
        self._tables.append(name)
        return name

    async def table(self) -> str:
        """Create an empty table ``(id bigserial, tag text)`` for this test; return its name."""
        name = self.table_name()
        async with self.server.admin() as admin:
            await admin.execute(
                f"CREATE TABLE {name} (id bigserial PRIMARY KEY, tag text NOT NULL)"
            )
        return name

    async def tags(self, table: str) -> list[str]:
        """Every committed ``tag`` in ``table``, in insertion order (read on a new connection)."""
        async with self.server.admin() as admin:
            rows = await admin.fetch(f"SELECT tag FROM {table} ORDER BY id")
        return [str(row["tag"]) for row in rows]

    async def finish(self) -> None:
        """Drop the test's tables; check that none of its connections is left open."""
        async with self.server.admin() as admin:
            for name in self._tables:
                await admin.execute(f"DROP TABLE IF EXISTS {name}")
        await self.wait_for_count(lambda n: n == 0, what="every connection of the test to close")


@dataclass
class Opened:
    """One connection a :class:`Connections` ledger opened."""

    conn: Connection
    pid: int  # the server process serving it
    opened_at: float  # time.monotonic() when on_create was called: its age starts here
    closes: int = 0  # on_destroy calls for it: exactly 1 in the end
    closed_at: float | None = None  # when its on_destroy finished


class Connections:
    """``on_create``/``on_destroy`` for a manager that record every connection.

    ``alive`` counts a connection from the moment its creation starts until its
    destruction has finished (a failed creation leaves at once), which is how
    ``max_resources`` and ``TaskStats.live_resources`` count live resources; ``peak``
    is the most at once. :meth:`assert_balanced` checks that each connection opened was
    closed exactly once.
    """

    def __init__(self, pg: PgTest) -> None:
        self.pg = pg
        self.opened: list[Opened] = []
        self._records: dict[int, Opened] = {}  # id(conn): the record keeps conn alive
        self.alive = 0
        self.peak = 0
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def create(self) -> Connection:
        """``on_create``: open a connection and record it."""
        self.alive += 1
        self.peak = max(self.peak, self.alive)
        called = time.monotonic()
        try:
            conn = await self.pg.connect()
        except BaseException:
            self.alive -= 1
            self._notify()
            raise
        record = Opened(conn, conn.get_server_pid(), called)
        self.opened.append(record)
        self._records[id(conn)] = record
        self._notify()
        return conn

    async def destroy(self, conn: Connection) -> None:
        """``on_destroy``: close the connection and record that it was closed."""
        record = self._records[id(conn)]
        record.closes += 1
        if record.closes > 1:
            return  # a second close: assert_balanced reports it
        try:
            await close_connection(conn)
        finally:
            record.closed_at = time.monotonic()
            self.alive -= 1
            self._notify()

    def pids(self) -> set[int]:
        """The server pids of the connections open now."""
        return {record.pid for record in self.opened if record.closes == 0}

    async def wait_until(self, condition: Callable[[], bool], *, what: str) -> None:
        """Wait, woken by each creation and destruction, until ``condition`` holds."""
        try:
            async with asyncio.timeout(WAIT):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"waited {WAIT} s for {what}") from None

    def assert_balanced(self) -> None:
        """Every connection opened was closed exactly once, and is closed."""
        wrong = [(r.pid, r.closes) for r in self.opened if r.closes != 1 or not r.conn.is_closed()]
        assert not wrong, f"(pid, on_destroy calls) of connections not closed exactly once: {wrong}"
        assert self.alive == 0, f"{self.alive} connections still alive or being created"
