"""The asyncpg hooks of ``examples/postgres_hooks.py`` on a real connection, and the server
helpers the suite relies on; one test pins the connections a default ``Config`` opens.
"""

from __future__ import annotations

import pytest

pytest.importorskip("asyncpg", reason="asyncpg is not installed (the test group has it)")

import asyncpg

from examples.postgres_hooks import (
    close_connection,
    connection_usable,
    is_connection_error,
    reset_connection,
)

from .helpers import Connections, PgTest, manager

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(20)]

TENANT = "SELECT current_setting('tasker.tenant', true)"


async def test_reset_connection_rolls_back_and_resets_the_session(pg: PgTest) -> None:
    """reset_connection rolls back an open transaction and undoes SET; commits stay."""
    table = await pg.table()
    conn = await pg.connect()
    try:
        await conn.execute(f"INSERT INTO {table} (tag) VALUES ('committed')")
        await conn.execute("SET tasker.tenant = 'alice'")
        await conn.execute("BEGIN")
        await conn.execute(f"INSERT INTO {table} (tag) VALUES ('left open')")
        assert conn.is_in_transaction()
        await reset_connection(conn)
        assert not conn.is_in_transaction()
        assert await conn.fetchval(TENANT) in (None, "")
        assert await pg.tags(table) == ["committed"]
    finally:
        await close_connection(conn)


async def test_reset_connection_recovers_a_failed_transaction(pg: PgTest) -> None:
    """reset_connection also ends a transaction aborted by an error."""
    conn = await pg.connect()
    try:
        await conn.execute("BEGIN")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.execute("SELECT 1 / 0")
        await reset_connection(conn)
        assert await conn.fetchval("SELECT 2") == 2
    finally:
        await close_connection(conn)


async def test_connection_usable_tells_live_from_terminated(pg: PgTest) -> None:
    """connection_usable is True on a live connection, and fails on a terminated one."""
    conn = await pg.connect()
    try:
        assert await connection_usable(conn)
        assert await pg.terminate_idle() == 1
        outcome: bool | Exception
        try:
            outcome = await connection_usable(conn)
        except Exception as exc:  # the client had not noticed yet: the check raises
            outcome = exc
        assert isinstance(outcome, Exception) or not outcome, "a terminated connection passed"
        assert not isinstance(outcome, Exception) or is_connection_error(outcome), repr(outcome)
    finally:
        await close_connection(conn)
    assert conn.is_closed()


async def test_terminate_and_count_see_only_the_tests_own_backends(pg: PgTest) -> None:
    """count() and terminate_idle() touch only this test's application_name."""
    other = await pg.server.connect("tasker-someone-else")
    mine = [await pg.connect() for _ in range(3)]
    try:
        assert await pg.count() == 3
        assert await pg.terminate_idle() == 3
        assert await pg.count() == 0  # terminate waits for the backends to exit
        assert await other.fetchval("SELECT 1") == 1
    finally:
        for conn in [*mine, other]:
            await close_connection(conn)


async def test_defaults_open_a_pool_of_worker_count_beside_the_workers(pg: PgTest) -> None:
    """With defaults, worker_count=3 opens 3 worker connections plus a run_task pool of 3."""
    conns = Connections(pg)
    async with manager(
        on_create=conns.create, on_destroy=conns.destroy, worker_count=3, burst_interval=None
    ) as tasks:
        assert await pg.count() == 6
        assert tasks.stats().available_resources == 3
        assert await tasks.queue_task(lambda conn: conn.fetchval("SELECT $1::int", 7)) == 7
        assert await tasks.run_task(lambda conn: conn.fetchval("SELECT $1::int", 8)) == 8
    assert len(conns.opened) == 6
    conns.assert_balanced()
