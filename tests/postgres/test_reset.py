"""Session state between tasks on one connection: the leak without ``on_reset``, and
``on_reset`` (issue 15).

The first test pins the problem: without ``on_reset`` nothing resets a connection
between tasks, so a transaction one task left open swallows the next task's writes.
The others set ``Config.on_reset`` to ``reset_connection``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("asyncpg", reason="asyncpg is not installed (the test group has it)")

from examples.postgres_hooks import Connection, reset_connection

from .helpers import Connections, PgTest, backend, manager

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(20)]

TENANT = "SELECT current_setting('tasker.tenant', true)"  # a session setting tasks SET
ONE_WORKER: dict[str, Any] = {
    "worker_count": 1,
    "max_worker_count": 1,
    "resource_pool_size": 0,
    "burst_interval": None,
}


class TaskFailed(Exception):
    """A task's own, deliberate failure."""


async def test_without_on_reset_an_open_transaction_leaks_into_the_next_task(pg: PgTest) -> None:
    """Without on_reset: a task's open BEGIN and SET reach the next task, whose INSERT is
    then lost.
    """
    table = await pg.table()
    conns = Connections(pg)

    async def leave_open(conn: Connection) -> None:
        await conn.execute("SET tasker.tenant = 'alice'")
        await conn.execute("BEGIN")
        await conn.execute(f"INSERT INTO {table} (tag) VALUES ('left open')")

    async def insert(conn: Connection) -> tuple[bool, str | None]:
        state = (conn.is_in_transaction(), await conn.fetchval(TENANT))
        await conn.execute(f"INSERT INTO {table} (tag) VALUES ('reported committed')")
        return state

    async def count_rows(conn: Connection) -> int:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))

    async with manager(on_create=conns.create, on_destroy=conns.destroy, **ONE_WORKER) as tasks:
        await tasks.queue_task(leave_open)
        assert await tasks.queue_task(insert) == (True, "alice")  # inside the leaked state
        assert await tasks.queue_task(count_rows) == 2  # the worker sees its uncommitted rows
        assert await pg.tags(table) == []  # nobody else does
    # Closing the connection rolled the transaction back: the INSERT its task reported
    # as done is gone, silently.
    assert await pg.tags(table) == []
    assert len(conns.opened) == 1
    conns.assert_balanced()


def job(table: str, kind: str, n: int, dirty: list[str]) -> Callable[[Connection], Awaitable[str]]:
    """A task of one ``kind`` that first records in ``dirty`` any state it inherited."""

    async def run(conn: Connection) -> str:
        in_transaction, tenant = conn.is_in_transaction(), await conn.fetchval(TENANT)
        if in_transaction or tenant not in (None, ""):
            dirty.append(f"{kind} {n}: in_transaction={in_transaction} tenant={tenant!r}")
        insert = f"INSERT INTO {table} (tag) VALUES ($1)"
        if kind == "leave open":
            await conn.execute(f"SET tasker.tenant = 'tenant {n}'")
            await conn.execute("BEGIN")
            await conn.execute(insert, f"open {n}")
        elif kind == "commit":
            await conn.execute(insert, f"commit {n}")
        elif kind == "transaction":
            async with conn.transaction():
                await conn.execute(insert, f"commit {n}")
        elif kind == "fail":
            await conn.execute("BEGIN")
            await conn.execute(insert, f"failed {n}")
            raise TaskFailed(n)
        return kind

    return run


KINDS = ("leave open", "commit", "transaction", "fail")


async def test_on_reset_keeps_every_task_clean_and_every_commit(pg: PgTest) -> None:
    """With on_reset: no task inherits an open transaction or a SET; no commit is lost."""
    table = await pg.table()
    conns = Connections(pg)
    dirty: list[str] = []
    jobs = [(KINDS[n % len(KINDS)], n) for n in range(80)]
    queued = [job(table, kind, n, dirty) for kind, n in jobs if n % 5]
    pooled = [job(table, kind, n, dirty) for kind, n in jobs if not n % 5]
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        on_reset=reset_connection,
        worker_count=2,
        max_worker_count=2,
        resource_pool_size=1,
        burst_interval=None,
    ) as tasks:

        async def run_pooled() -> list[str | BaseException]:
            """One after another, so they share the pool's one connection."""
            outcomes: list[str | BaseException] = []
            for fn in pooled:
                try:
                    outcomes.append(await tasks.run_task(fn))
                except TaskFailed as exc:
                    outcomes.append(exc)
            return outcomes

        pooled_outcomes = asyncio.create_task(run_pooled())
        queued_outcomes = await asyncio.gather(
            *(tasks.submit(fn) for fn in queued), return_exceptions=True
        )
        outcomes = [*queued_outcomes, *await pooled_outcomes]
    assert dirty == []
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, TaskFailed) for o in failed), failed
    assert len(failed) == sum(kind == "fail" for kind, _ in jobs)
    committed = [f"commit {n}" for kind, n in jobs if kind in ("commit", "transaction")]
    assert sorted(await pg.tags(table)) == sorted(committed)  # nothing left open survived
    conns.assert_balanced()


async def test_a_failing_on_reset_replaces_the_connection_and_keeps_the_answer(
    pg: PgTest,
) -> None:
    """on_reset raising (its connection was killed): the task still answers; the next
    task runs on a new connection.
    """
    conns = Connections(pg)

    async def killed_after_its_work(conn: Connection) -> int:
        pid = await backend(conn)
        assert await pg.terminate_idle() == 1  # this connection, idle between queries
        return pid

    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        on_reset=reset_connection,
        **ONE_WORKER,
    ) as tasks:
        first = conns.pids()
        assert {await tasks.queue_task(killed_after_its_work)} == first
        assert await tasks.queue_task(backend) not in first
    assert len(conns.opened) == 2
    conns.assert_balanced()
