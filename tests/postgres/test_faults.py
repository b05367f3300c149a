"""Dead connections: every idle backend terminated, and a server restart under load.

With ``Config.check_resource`` (issue 15) a connection is checked when it has been idle
a while and right after a task fails on it, and after an unhealthy failure every idle
or pooled one is checked before its next task: no caller should see the dead
connections.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("asyncpg", reason="asyncpg is not installed (the test group has it)")

from examples.postgres_hooks import Connection, connection_usable
from tasker_aio import TaskManager

from .helpers import WAIT, Connections, PgTest, backend, manager

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

MEASURE = 0.4  # seconds of load measured before and after the restart (only reported)


async def test_terminated_idle_backends_reach_no_queued_caller(pg: PgTest) -> None:
    """pg_terminate_backend of every idle backend, then load: with check_resource no
    caller sees an error, one at a time (no retry storm) or 200 at once.
    """
    conns = Connections(pg)
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        check_resource=connection_usable,  # check_idle_after and max_retries: defaults
        worker_count=8,
        max_worker_count=8,
        resource_pool_size=0,
        burst_interval=None,
    ) as tasks:
        await asyncio.gather(*(tasks.submit(backend) for _ in range(16)))
        killed = conns.pids()
        assert await pg.terminate_idle() == len(killed) == 8
        one_at_a_time = [await tasks.queue_task(backend) for _ in range(10)]
        at_once = await asyncio.gather(
            *(tasks.submit(backend) for _ in range(200)), return_exceptions=True
        )
    errors = [outcome for outcome in at_once if isinstance(outcome, BaseException)]
    assert errors == []
    assert not killed & {*one_at_a_time, *at_once}
    conns.assert_balanced()


async def test_terminated_pool_backends_reach_no_run_task_caller(pg: PgTest) -> None:
    """Every idle backend terminated, then run_task: the pool's connections are checked
    before use (check_idle_after=0), so no caller sees an error.
    """
    conns = Connections(pg)
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        check_resource=connection_usable,
        check_idle_after=0,
        worker_count=1,
        max_worker_count=1,
        resource_pool_size=4,
        burst_interval=None,
    ) as tasks:
        killed = conns.pids()
        assert await pg.terminate_idle() == len(killed) == 5
        one_at_a_time = [await tasks.run_task(backend) for _ in range(6)]
        at_once = await asyncio.gather(
            *(tasks.run_task(backend) for _ in range(8)), return_exceptions=True
        )
    errors = [outcome for outcome in at_once if isinstance(outcome, BaseException)]
    assert errors == []
    assert not killed & {*one_at_a_time, *at_once}
    conns.assert_balanced()


class Load:
    """Closed-loop callers awaiting ``SELECT $1`` through ``queue_task``, until stopped.

    Every caller is bounded (``per_caller`` tasks at most) and every answer is checked;
    completions are timestamped so the test can report how throughput came back.
    """

    def __init__(self, tasks: TaskManager[Connection, Any], callers: int, per_caller: int) -> None:
        self.tasks = tasks
        self.completed: list[float] = []  # time.monotonic() of each correct answer
        self.errors: list[BaseException] = []
        self.wrong: list[tuple[int, object]] = []
        self.stopping = asyncio.Event()
        self._progress = asyncio.Event()
        self._callers = [asyncio.create_task(self._call(per_caller)) for _ in range(callers)]

    async def _call(self, per_caller: int) -> None:
        for n in range(per_caller):
            if self.stopping.is_set():
                return

            async def select(conn: Connection, n: int = n) -> int:
                return int(await conn.fetchval("SELECT $1::int", n))

            try:
                answer = await self.tasks.queue_task(select)
            except Exception as exc:
                self.errors.append(exc)
            else:
                if answer == n:
                    self.completed.append(time.monotonic())
                else:
                    self.wrong.append((n, answer))
            self._progress.set()
            self._progress = asyncio.Event()

    async def until_completed(self, count: int) -> None:
        """Wait until ``count`` answers in all have come back correct."""
        async with asyncio.timeout(WAIT):
            while len(self.completed) < count:
                if all(caller.done() for caller in self._callers):
                    raise AssertionError(f"the load ended after {len(self.completed)} answers")
                await self._progress.wait()

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self._callers)

    def per_bucket(self, start: float, end: float, bucket: float = 0.1) -> list[int]:
        """Answers per ``bucket`` seconds between ``start`` and ``end``."""
        counts = [0] * max(1, round((end - start) / bucket))
        for at in self.completed:
            if start <= at < end:
                counts[min(len(counts) - 1, int((at - start) / bucket))] += 1
        return counts


async def test_server_restart_under_load_reaches_no_caller(
    pg: PgTest, record_property: Any
) -> None:
    """pg_ctl restart -m fast under load: with check_resource and max_retries=3 no caller
    sees an error, and tasks flow again once the server accepts connections.

    The time until full throughput returned is printed and recorded (``recovery_s``),
    never asserted: the 1 s target belongs to ``python -m benchmarks.postgres``.
    """
    conns = Connections(pg)
    async with manager(
        on_create=conns.create,
        on_destroy=conns.destroy,
        check_resource=connection_usable,
        max_retries=3,
        create_backoff=lambda attempt: 0.05,
        worker_count=4,
        max_worker_count=4,
        resource_pool_size=0,
        burst_interval=None,
    ) as tasks:
        load = Load(tasks, callers=8, per_caller=5_000)
        try:
            await load.until_completed(100)  # warmed up
            steady_from = time.monotonic()
            await asyncio.sleep(MEASURE)  # a window to measure, not a synchronisation
            before = len(load.completed)
            restart_began = time.monotonic()
            await asyncio.to_thread(pg.server.restart, "fast")
            accepting = time.monotonic()  # pg_ctl -w returns once connections are accepted
            await load.until_completed(before + 300)  # tasks flow again...
            await asyncio.sleep(MEASURE)  # ...and how fast, for the note below
        finally:
            await load.stop()
        ended = time.monotonic()
    assert load.errors == [], load.errors[:5]
    assert load.wrong == []
    conns.assert_balanced()

    bucket = 0.05
    steady = sorted(load.per_bucket(steady_from, restart_began, bucket))
    after = load.per_bucket(accepting, ended, bucket)
    typical = steady[len(steady) // 2] if steady else 0
    full = next((i for i, count in enumerate(after) if count >= 0.8 * typical), None)
    recovery = None if full is None else round(full * bucket, 2)
    first = min((at for at in load.completed if at >= accepting), default=None)
    record_property("recovery_s", recovery)
    print(
        f"restart -m fast took {accepting - restart_began:.2f} s; the first answer came "
        f"{'-' if first is None else f'{first - accepting:.3f}'} s after the server "
        f"accepted connections, and a 50 ms bucket reached 80% of the steady median "
        f"({typical} answers) {recovery} s after; answers per 50 ms after: {after[:12]}; "
        f"{len(conns.opened)} connections opened in all"
    )
