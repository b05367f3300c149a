"""FastAPI + tasker_aio + asyncpg: a notes service; each worker holds one PostgreSQL connection.

Run it (needs the ``web`` extra, asyncpg and a PostgreSQL server)::

    DATABASE_URL=postgresql://user@127.0.0.1:5432/db python -m examples.postgres_app
    curl -X POST 127.0.0.1:8000/notes -H 'content-type: application/json' -d '{"text": "hi"}'
    curl 127.0.0.1:8000/notes/1     # {"id":1,"text":"hi"}
    curl 127.0.0.1:8000/notes       # {"count":1}: a short read through run_task
    curl 127.0.0.1:8000/stats       # {"stats":{...},"metrics":{...}}

What the connections need, and the setting that gives it (see ``SETTINGS``):

- a clean session for every task: ``on_reset`` rolls back whatever a task left open and
  resets ``SET``/``LISTEN``/advisory locks, as asyncpg's pool does on release;
- no dead connection handed to a request: ``check_resource`` runs ``SELECT 1`` on a
  connection idle for ``check_idle_after`` seconds, after a task failed on it (a failed
  check makes the failure unhealthy, so the task is re-run on a good connection, up to
  ``max_retries``), and every ``check_interval`` seconds on idle ones;
- one hard cap for the DBA: ``max_resources`` counts every connection (workers, burst
  workers, the ``run_task`` pool, temporaries, replacements), so the service never holds
  more than that many of the server's ``max_connections``;
- ``max_resource_age`` recycles connections, so server-side memory and settings
  changed by an operator do not live forever.

``on_reset``, ``check_resource``, ``check_idle_after``, ``check_interval``,
``max_resource_age`` and ``max_resources`` are the resource-lifecycle settings planned in
issue 15: until tasker_aio has them, ``Config`` refuses them and the app does not start.

Requests are short queries here, so handlers simply await their task; for long ones,
cancel the task when the client goes away (see ``cancel_on_disconnect`` in
``examples/fastapi_app.py``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from examples.postgres_hooks import (
    CONNECTION_ERRORS,
    Connection,
    close_connection,
    connection_usable,
    connector,
    is_connection_error,
    reset_connection,
)
from tasker_aio import Config, MaxRetriesExceededError, ResourceCreationError, TaskManager

SETTINGS: dict[str, Any] = {
    "worker_count": 4,
    "max_worker_count": 8,
    "resource_pool_size": 2,
    "max_resources": 10,  # connections at most, of every kind
    "on_reset": reset_connection,
    "check_resource": connection_usable,
    "check_idle_after": 1.0,
    "check_interval": 30.0,
    "max_resource_age": 1800.0,
    "max_retries": 2,
    "check_health": lambda exc: not is_connection_error(exc),
}
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class NewNote(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Note(BaseModel):
    id: int
    text: str


class NoteCount(BaseModel):
    count: int


Notes = TaskManager[Connection, Any]


async def get_manager(request: Request) -> Notes:
    manager: Notes = request.app.state.manager
    return manager


async def get_table(request: Request) -> str:
    table: str = request.app.state.table
    return table


Manager = Annotated[Notes, Depends(get_manager)]
Table = Annotated[str, Depends(get_table)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the connections (and the table) before the first request; close them after
    the last.
    """
    state = app.state
    config: Config[Connection] = Config(
        on_create=connector(state.dsn, state.application_name),
        on_destroy=close_connection,
        **state.settings,
    )
    async with Notes(config) as manager:
        await manager.run_task(
            lambda conn: conn.execute(
                f"CREATE TABLE IF NOT EXISTS {state.table}"
                " (id bigserial PRIMARY KEY, text text NOT NULL)"
            )
        )
        state.manager = manager
        yield


router = APIRouter()


@router.post("/notes", status_code=201)
async def add_note(note: NewNote, manager: Manager, table: Table) -> Note:
    """Insert a note in a transaction, on a worker's connection (main queue)."""

    async def insert(conn: Connection) -> Any:
        async with conn.transaction():
            return await conn.fetchrow(
                f"INSERT INTO {table} (text) VALUES ($1) RETURNING id, text", note.text
            )

    return Note(**dict(await manager.queue_task(insert)))


@router.get("/notes/{note_id}")
async def get_note(note_id: int, manager: Manager, table: Table) -> Note:
    """One note, or 404."""
    row = await manager.queue_task(
        lambda conn: conn.fetchrow(f"SELECT id, text FROM {table} WHERE id = $1", note_id)
    )
    if row is None:
        raise HTTPException(status_code=404, detail=f"no note {note_id}")
    return Note(**dict(row))


@router.get("/notes")
async def count_notes(manager: Manager, table: Table) -> NoteCount:
    """How many notes: a short read that skips the queues (``run_task`` on the pool)."""
    count = await manager.run_task(lambda conn: conn.fetchval(f"SELECT count(*) FROM {table}"))
    return NoteCount(count=count)


@router.get("/stats")
async def stats(manager: Manager) -> dict[str, dict[str, Any]]:
    """Workers, queues and live connections (``stats()``); latencies, counts (``metrics()``)."""
    return {"stats": asdict(manager.stats()), "metrics": asdict(manager.metrics())}


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database could not be reached, even after the retries: 503, not 500.

    ``MaxRetriesExceededError`` comes only from unhealthy (connection) failures here,
    since ``task_retries`` is 0; ``ResourceCreationError`` from a ``run_task`` that
    could not open a temporary connection.
    """
    return JSONResponse({"detail": f"database unavailable: {exc}"}, status_code=503)


def create_app(
    dsn: str,
    *,
    table: str = "notes",
    application_name: str = "tasker-notes",
    **config_overrides: Any,
) -> FastAPI:
    """Build the app; ``config_overrides`` replace entries of :data:`SETTINGS`.

    Args:
        dsn: where PostgreSQL is, e.g. ``postgresql://user@127.0.0.1:5432/db``.
        table: the notes table (created if missing); a plain lower-case identifier.
        application_name: names the connections in ``pg_stat_activity``.
        config_overrides: :class:`tasker_aio.Config` fields.

    Raises:
        ValueError: ``table`` is not a plain identifier.
    """
    if not TABLE_NAME.fullmatch(table):
        raise ValueError(f"table must be a plain lower-case identifier, got {table!r}")
    app = FastAPI(title="tasker_aio notes on PostgreSQL", lifespan=lifespan)
    app.state.dsn = dsn
    app.state.table = table
    app.state.application_name = application_name
    app.state.settings = {**SETTINGS, **config_overrides}
    app.include_router(router)
    for error in (*CONNECTION_ERRORS, MaxRetriesExceededError, ResourceCreationError):
        app.add_exception_handler(error, database_unavailable)
    return app


def main() -> None:
    """Serve on 127.0.0.1:8000 against ``$DATABASE_URL``."""
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        sys.exit("set DATABASE_URL, e.g. postgresql://user@127.0.0.1:5432/db")
    uvicorn.run(create_app(dsn), host="127.0.0.1", port=8000)


if __name__ == "__main__":
    main()
