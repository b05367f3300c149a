"""asyncpg connections as tasker_aio resources: the hooks a PostgreSQL user needs.

Each worker holds one connection. The hooks below are what asyncpg's own pool does
for its connections, written for tasker_aio's ``Config``::

    config = Config(
        on_create=connector(dsn, "my-service"),
        on_destroy=close_connection,
        on_reset=reset_connection,  # after every task: roll back, RESET ALL, UNLISTEN *
        check_resource=connection_usable,  # SELECT 1, when idle a while or after a failure
        check_health=lambda exc: not is_connection_error(exc),
        worker_count=8,
    )

``check_health`` sees only the exception, not the connection: it can tell a task that
failed because its connection died, but only ``check_resource`` finds a dead connection
before a task runs on it. ``examples/postgres_app.py`` adds the cap, the keepalive and
recycling (``max_resources``, ``check_interval``, ``max_resource_age``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import asyncpg

__all__ = [
    "CHECK_TIMEOUT",
    "CONNECTION_ERRORS",
    "Connection",
    "close_connection",
    "connection_usable",
    "connector",
    "is_connection_error",
    "reset_connection",
]

Connection: TypeAlias = Any  # asyncpg.Connection; asyncpg ships no type information
CHECK_TIMEOUT = 1.0  # seconds a usable connection takes at most to answer SELECT 1

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, timed out
    asyncpg.PostgresConnectionError,  # "connection was closed in the middle of operation"
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.InternalClientError,  # "cannot switch to state ..." on a just-killed connection
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash, cannot connect now
)


def is_connection_error(exc: BaseException) -> bool:
    """True for errors that mean the connection (or the server) is gone, not the query."""
    return isinstance(exc, CONNECTION_ERRORS)


def connector(dsn: str, application_name: str) -> Callable[[], Awaitable[Connection]]:
    """An ``on_create`` opening connections to ``dsn`` named ``application_name``.

    The name shows in ``pg_stat_activity``, so an operator can tell the service's
    connections apart (and count them).
    """

    async def connect() -> Connection:
        return await asyncpg.connect(dsn, server_settings={"application_name": application_name})

    return connect


async def close_connection(conn: Connection) -> None:
    """``on_destroy``: close gracefully, or abort a connection that cannot be closed."""
    try:
        await conn.close(timeout=5)
    except Exception:
        conn.terminate()  # already aborted by close(); this only makes sure


async def reset_connection(conn: Connection) -> None:
    """``on_reset``: leave the session as a new connection would be.

    Rolls back a transaction the task left open (committed work is untouched), then
    runs asyncpg's reset query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL``), as asyncpg's pool does on release. The explicit ``ROLLBACK`` comes
    first because ``reset()`` reports an open transaction through the event loop's
    exception handler. ``DISCARD ALL`` would also drop asyncpg's cached prepared
    statements, which asyncpg would then fail to find.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
    await conn.reset()


async def connection_usable(conn: Connection) -> bool:
    """``check_resource``: True if the connection answers ``SELECT 1`` within ``CHECK_TIMEOUT``.

    A closed connection is unusable without a round trip; a dead one raises, which
    ``check_resource`` also counts as unusable.
    """
    if conn.is_closed():
        return False
    return bool(await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT) == 1)
