"""Quickstart: two workers, each holding a (fake) DB connection, run a query: ``users: 42``."""

import asyncio

from tasker_aio import Config, TaskManager


class Connection:
    async def fetch_count(self, table: str) -> int:
        await asyncio.sleep(0.01)  # pretend to talk to a database
        return 42

    async def close(self) -> None: ...


async def connect() -> Connection:
    return Connection()


async def main() -> None:
    config = Config(on_create=connect, on_destroy=Connection.close, worker_count=2)
    async with TaskManager[Connection, int](config) as manager:
        users = await manager.queue_task(lambda conn: conn.fetch_count("users"))
        print(f"users: {users}")


if __name__ == "__main__":
    asyncio.run(main())
