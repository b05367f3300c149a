"""``examples/postgres_app.py`` served for real: uvicorn on 127.0.0.1, httpx as the client,
asyncpg connections to the throwaway server.

The app configures the resource-lifecycle settings planned in issue 15, so these tests
are skipped until ``Config`` has them (see ``needs``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("asyncpg", reason="asyncpg is not installed (the test group has it)")
pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("uvicorn", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="the web extra is not installed")

import httpx
import uvicorn

from examples import postgres_app

from .helpers import WAIT, PgTest, eventually, needs

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.web,
    pytest.mark.timeout(30),
    needs(*postgres_app.SETTINGS),  # every key is a Config field; the planned ones skip
]

SMALL = {"worker_count": 2, "max_worker_count": 4, "resource_pool_size": 2, "max_resources": 6}


@asynccontextmanager
async def serve(pg: PgTest, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve the app on a free port of 127.0.0.1; yield a client; shut it down after."""
    app = postgres_app.create_app(
        pg.server.dsn,
        table=pg.table_name(),  # the app creates it; the fixture drops it
        application_name=pg.application_name,
        **overrides,
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", log_config=None
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits this way when the lifespan fails
            raise RuntimeError("uvicorn failed to start") from exc

    serving = asyncio.create_task(run())
    try:
        await eventually(lambda: server.started or serving.done(), what="uvicorn to start")
        if serving.done():
            await serving  # raises why it did not start
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
            yield client
    finally:
        server.should_exit = True
        await serving


async def test_notes_are_stored_read_and_counted(pg: PgTest) -> None:
    """POST stores a note (201), GET reads it back or 404s, /notes counts through
    run_task, /stats shows the live connections within max_resources.
    """
    async with serve(pg, **SMALL) as client:
        created = [(await client.post("/notes", json={"text": f"note {n}"})) for n in range(5)]
        assert [response.status_code for response in created] == [201] * 5
        notes = [response.json() for response in created]
        assert [note["text"] for note in notes] == [f"note {n}" for n in range(5)]
        for note in notes:
            assert (await client.get(f"/notes/{note['id']}")).json() == note
        assert (await client.get("/notes/999999")).status_code == 404
        assert (await client.post("/notes", json={"text": ""})).status_code == 422
        assert (await client.get("/notes")).json() == {"count": 5}
        stats = (await client.get("/stats")).json()["stats"]
        assert stats["live_resources"] <= SMALL["max_resources"]
        assert await pg.count() <= SMALL["max_resources"]


async def test_requests_survive_every_idle_connection_terminated(pg: PgTest) -> None:
    """Every idle connection of the app terminated on the server: the next requests,
    queued and run_task alike, all succeed (check_resource and the retries).
    """
    async with serve(pg, **SMALL) as client:
        ids = [(await client.post("/notes", json={"text": f"n{n}"})).json()["id"] for n in range(4)]
        assert (await client.get("/notes")).json() == {"count": 4}
        # The pool connections were last used before the workers': if the workers have
        # been idle past check_idle_after, the pool's have too, and both are checked
        # before use; if not, the first failure on a worker gets them all checked.
        for note_id in ids:
            assert (await client.get(f"/notes/{note_id}")).status_code == 200
        assert await pg.terminate_idle() == SMALL["worker_count"] + SMALL["resource_pool_size"]
        for note_id in ids:
            response = await client.get(f"/notes/{note_id}")
            assert response.status_code == 200, response.text
        assert (await client.get("/notes")).json() == {"count": 4}
        added = await client.post("/notes", json={"text": "after the kill"})
        assert added.status_code == 201, added.text
        assert await pg.count() <= SMALL["max_resources"]
