"""Print a manager's lifecycle events as they happen: why it did what it did.

A broken connection is replaced, a failed query retried, a burst worker added under load
and retired when the load is gone, and the manager shut down; a watcher task prints each
event from ``manager.events()`` as it arrives.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from tasker_aio import (
    Config,
    Event,
    EventsLost,
    ResourceCreated,
    ResourceDestroyed,
    ScalingDecided,
    ShutdownBegan,
    ShutdownFinished,
    TaskFailed,
    TaskManager,
    TaskRetried,
    WorkerAdded,
    WorkerReplaced,
    WorkerRetired,
)


class ConnectionLost(Exception):
    """The server went away: this connection is no good any more."""


class Connection:
    numbers = itertools.count(1)

    def __init__(self) -> None:
        self.number = next(self.numbers)

    async def query(self, sql: str, fail: type[Exception] | None = None) -> str:
        await asyncio.sleep(0.01)  # pretend to talk to a database
        if fail is not None:
            raise fail(f"{sql} on connection {self.number}")
        return f"{sql}: ok"

    async def close(self) -> None:
        await asyncio.sleep(0)


def describe(event: Event) -> str:
    """One line per event, without its time."""
    match event:
        case WorkerAdded(burst=burst):
            return f"event: {'burst' if burst else 'base'} worker added"
        case WorkerRetired():
            return "event: idle burst worker retired"
        case WorkerReplaced(reason=reason):
            return f"event: worker's resource replaced, {reason}"
        case ResourceCreated(live_resources=live):
            return f"event: resource created, {live} live"
        case ResourceDestroyed(live_resources=live):
            return f"event: resource destroyed, {live} live"
        case TaskRetried(attempt=attempt, unhealthy=unhealthy, error=error):
            kind = "an unhealthy" if unhealthy else "a healthy"
            return f"event: task retried, attempt {attempt}, after {kind} failure: {error}"
        case TaskFailed(attempts=attempts, error=error):
            return f"event: task failed after {attempts} attempts: {error}"
        case ScalingDecided(change=change, stats=stats):
            return f"event: scaling {change:+d} with {stats.queued_tasks} queued"
        case ShutdownBegan(how=how):
            return f"event: shutdown began ({how})"
        case ShutdownFinished():
            return "event: shutdown finished"
        case EventsLost(count=count):
            return f"event: {count} events lost"
    return f"event: {event!r}"


def query(sql: str) -> Callable[[Connection], Awaitable[str]]:
    """A query that succeeds."""
    return lambda connection: connection.query(sql)


def fails_once(sql: str, error: type[Exception]) -> Callable[[Connection], Awaitable[str]]:
    """A query that raises ``error`` on its first run only."""
    runs = 0

    async def run(connection: Connection) -> str:
        nonlocal runs
        runs += 1
        return await connection.query(sql, error if runs == 1 else None)

    return run


async def watch(manager: TaskManager[Connection, str], retired: asyncio.Event) -> None:
    """Print every event until the manager is done."""
    async for event in manager.events():  # ends after ShutdownFinished
        print(describe(event))
        if isinstance(event, WorkerRetired):
            retired.set()


async def main() -> None:
    config = Config(
        on_create=Connection,
        on_destroy=Connection.close,
        worker_count=1,
        max_worker_count=2,
        resource_pool_size=0,
        check_health=lambda error: not isinstance(error, ConnectionLost),
        task_retries=1,
        retry_backoff=lambda attempt: 0.05,
        burst_interval=0.05,
    )
    manager = TaskManager[Connection, str](config)
    retired = asyncio.Event()
    watcher = asyncio.create_task(watch(manager, retired))  # subscribed before entry
    async with manager:
        print("--- a lost connection: replaced, and the query re-run on the new one")
        print(await manager.queue_task(fails_once("select 1", ConnectionLost)))
        print("--- a failing query: retried after its backoff, then failed for good")
        try:
            await manager.queue_task(lambda c: c.query("select 2", ValueError))
        except Exception as error:
            print(f"caller got: {error}")
        print("--- more work than one worker: a burst worker comes, then goes")
        queries = [query(f"select {n}") for n in range(10)]
        results = await asyncio.gather(*(manager.queue_task(q) for q in queries))
        print(f"{len(results)} queries answered")
        async with asyncio.timeout(5):
            await retired.wait()
        print("--- shutdown")
    await watcher


if __name__ == "__main__":
    asyncio.run(main())
