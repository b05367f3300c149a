"""What type checkers see of the public API: checked by ``mypy --strict``, never run.

``assert_type`` fails type checking when an inferred type drifts; pytest does not
collect this file (its name does not start with ``test_``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, assert_type

from tasker_aio import (
    Callback,
    Config,
    Event,
    EventStream,
    MapIterator,
    TaskManager,
    TaskStats,
)


class Conn:
    """A resource whose methods return different types."""

    async def count(self) -> int:
        return 1

    async def names(self) -> list[str]:
        return []

    async def close(self) -> None: ...


async def connect() -> Conn:
    return Conn()


async def double(conn: Conn, item: int) -> str:
    return str(item * 2)


def on_done(result: int | None, error: BaseException | None) -> None:
    pass


async def per_call_results() -> None:
    config = Config(on_create=connect, on_destroy=Conn.close, worker_count=1)
    assert_type(config, Config[Conn])
    manager = TaskManager(config)  # no type parameters needed
    assert_type(manager, TaskManager[Conn, Any])
    async with manager as entered:
        assert_type(entered, TaskManager[Conn, Any])
        # One manager, tasks of different result types.
        assert_type(await manager.queue_task(lambda conn: conn.count()), int)
        assert_type(await manager.queue_task_with_priority(Conn.names), list[str])
        assert_type(await manager.queue_task_once(Conn.count), int)
        assert_type(await manager.queue_task_with_priority_once(Conn.names), list[str])
        names = assert_type(manager.submit(Conn.names), asyncio.Future[list[str]])
        count = assert_type(manager.queue_task_async(Conn.count), asyncio.Future[int])
        await asyncio.gather(names, count)
        assert_type(await manager.run_task(Conn.names), list[str])
        manager.queue_task_with_callback(Conn.count, on_done)
        assert_type(manager.submit_threadsafe(Conn.count), concurrent.futures.Future[int])
        results = manager.map(double, [1, 2, 3])
        assert_type(results, MapIterator[Conn, int, str])
        async for value in results:
            assert_type(value, str)
        assert_type(manager.stats(), TaskStats)
        events = manager.events()
        assert_type(events, EventStream)
        async for event in events:
            assert_type(event, Event)


async def the_old_spelling_still_works() -> None:
    """TaskManager[R, E], as code written before per-call types has it."""
    manager = TaskManager[Conn, int](
        Config(on_create=connect, on_destroy=Conn.close, worker_count=1)
    )
    assert_type(await manager.queue_task(Conn.count), int)
    one_param: TaskManager[Conn] = manager
    assert_type(one_param, TaskManager[Conn, Any])


def callback_type() -> None:
    callback: Callback[int] = on_done
    assert_type(callback(1, None), Any)
