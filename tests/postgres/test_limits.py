"""How many connections live, and for how long: the cap, the keepalive, recycling, and
every connection closed exactly once.

``max_resources`` with ``TaskStats.live_resources``, ``check_interval`` and
``max_resource_age``; the closed-exactly-once test runs with none of them set and with
all of them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("asyncpg", reason="asyncpg is not installed (the test group has it)")

from examples.postgres_hooks import (
    Connection,
    connection_usable,
    is_connection_error,
    reset_connection,
)
from tasker_aio import MaxRetriesExceededError

from .helpers import (
    Connections,
    PgTest,
    backend,
    eventually,
    manager,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]


async def short_sleep(conn: Connection) -> int:
    """A query that holds its connection for 3 ms."""
    await conn.execute("SELECT pg_sleep(0.003)")
    return int(conn.get_server_pid())


async def test_connections_never_exceed_max_resources(pg: PgTest) -> None:
    """max_resources=5: pg_stat_activity never shows more than 5 connections, with
    bursting (up to 6 workers) and 6 concurrent run_task callers (pool of 2) at once.
    """
    cap = 5
    conns = Connections(pg)
    server_counts: list[int] = []
    live_counts: list[int] = []
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        max_resources=cap,
        worker_count=2,
        max_worker_count=6,
        resource_pool_size=2,
        burst_interval=0.02,
    ) as tasks:
        done = asyncio.Event()

        async def sample() -> None:
            async with pg.server.admin() as admin:
                for _ in range(20_000):  # bounded; ends when the load does
                    count = await pg.server.count_connections(pg.application_name, admin=admin)
                    server_counts.append(count)
                    live_counts.append(tasks.stats().live_resources)
                    if done.is_set():
                        return
                    await asyncio.sleep(0.002)

        async def run_tasks() -> list[int]:
            return [await tasks.run_task(short_sleep) for _ in range(15)]

        sampler = asyncio.create_task(sample())
        try:
            queued = [tasks.submit(short_sleep) for _ in range(300)]
            await asyncio.gather(*queued, *(run_tasks() for _ in range(6)))
        finally:
            done.set()
            await sampler
    assert max(server_counts) <= cap, server_counts
    assert max(live_counts) <= cap, live_counts
    assert conns.peak == cap  # the load did push against the cap
    conns.assert_balanced()


async def test_check_interval_replaces_connections_killed_while_idle(pg: PgTest) -> None:
    """check_interval: connections killed while idle are replaced before any task sees
    them (no check before tasks, no retries: a dead connection would fail a caller).
    """
    conns = Connections(pg)
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        check_resource=connection_usable,
        check_interval=0.05,
        check_idle_after=None,
        max_retries=0,
        worker_count=3,
        max_worker_count=3,
        resource_pool_size=2,
        burst_interval=None,
    ) as tasks:
        killed = conns.pids()
        assert await pg.terminate_idle() == len(killed) == 5
        await conns.wait_until(
            lambda: not killed & conns.pids() and len(conns.pids()) == 5,
            what="the keepalive to replace the 5 killed connections",
        )
        queued = await asyncio.gather(*(tasks.submit(backend) for _ in range(30)))
        pooled = await asyncio.gather(*(tasks.run_task(backend) for _ in range(2)))
    assert not killed & {*queued, *pooled}
    # 5 first, 5 replacements, and maybe a run_task temporary if a pool connection was
    # out for its keepalive check just then.
    assert len(conns.opened) >= 10
    conns.assert_balanced()


async def test_max_resource_age_recycles_connections(pg: PgTest) -> None:
    """max_resource_age=0.2 s: worker and pool connections are closed and replaced once
    older, never before; the number open stays the same.
    """
    max_age = 0.2
    conns = Connections(pg)
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        max_resource_age=max_age,
        worker_count=2,
        max_worker_count=2,
        resource_pool_size=1,
        burst_interval=None,
    ) as tasks:
        first = conns.pids()
        both = asyncio.Barrier(2)  # two tasks that must run at once: one on each worker

        async def on_both_workers(conn: Connection) -> int:
            async with both:
                return await backend(conn)

        for _ in range(2_000):  # bounded; ends once every first connection was recycled
            if not first & conns.pids():
                break
            await asyncio.gather(tasks.submit(on_both_workers), tasks.submit(on_both_workers))
            # A run_task finding the pool empty would use a temporary connection, which
            # is closed young by design: wait for the pool's replacement instead.
            await eventually(lambda: tasks.stats().available_resources == 1, what="the pool")
            await tasks.run_task(backend)
        assert not first & conns.pids(), "the first connections were never recycled"
        await pg.wait_for_count(lambda n: n == 3, what="3 connections after recycling")
        shutdown = time.monotonic()
    recycled = [r for r in conns.opened if r.closed_at is not None and r.closed_at < shutdown]
    assert len(recycled) >= 3
    # From on_create's call to on_destroy's end: never shorter than the age the engine
    # counts, whenever between those it starts and stops counting.
    ages = [r.closed_at - r.opened_at for r in recycled if r.closed_at is not None]
    assert min(ages) >= max_age, [round(age, 4) for age in ages]
    conns.assert_balanced()


EVERY_HOOK = {  # every resource-lifecycle setting of issue 15
    "on_reset": reset_connection,
    "check_resource": connection_usable,
    "check_interval": 0.05,
    "max_resource_age": 0.3,
    "max_resources": 7,
    "create_backoff": lambda attempt: 0.02,
    "destroy_timeout": 5.0,
    "burst_idle_timeout": 0.05,
}


@pytest.mark.parametrize(
    "lifecycle",
    [
        pytest.param({}, id="defaults"),
        pytest.param(EVERY_HOOK, id="every-hook"),
    ],
)
async def test_every_connection_opened_is_closed_exactly_once(
    pg: PgTest, lifecycle: dict[str, Any]
) -> None:
    """Workers, burst workers, the pool, run_task temporaries and replacements of killed
    connections: each connection opened is closed exactly once, and none is left.
    """
    conns = Connections(pg)

    async def kill_own_backend(conn: Connection) -> None:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        check_health=lambda exc: not is_connection_error(exc),
        worker_count=2,
        max_worker_count=6,
        resource_pool_size=1,
        burst_interval=0.02,
        **lifecycle,
    ) as tasks:
        queued = [
            tasks.submit(short_sleep) if n % 20 else tasks.submit(kill_own_backend, once=True)
            for n in range(200)
        ]

        async def run_tasks() -> list[int]:
            return [await tasks.run_task(short_sleep) for _ in range(10)]

        outcomes = await asyncio.gather(
            *queued, *(run_tasks() for _ in range(4)), return_exceptions=True
        )
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 10  # the tasks that killed their own connection
    for error in errors:  # unhealthy and never re-run (once=True): MaxRetriesExceededError
        assert isinstance(error, MaxRetriesExceededError), repr(error)
        cause = error.__cause__
        assert cause is not None and is_connection_error(cause), repr(cause)
    assert len(conns.opened) >= 3 + len(errors)  # each killed connection was replaced
    conns.assert_balanced()
    await pg.wait_for_count(lambda n: n == 0, what="every connection to close")
