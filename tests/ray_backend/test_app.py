"""examples/ray_app.py served for real: uvicorn on 127.0.0.1, models in Ray actors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx
import uvicorn

from tasker_aio import TaskManager

from .backends import WAIT, eventually, live_actors

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("ray_session"), pytest.mark.web]


@asynccontextmanager
async def serve(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Serve ``ray_app.create_app(**overrides)`` on a free port; yield a client and the app."""
    from examples import ray_app

    app = ray_app.create_app(**overrides)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_level="warning",
            log_config=None,
            timeout_graceful_shutdown=int(WAIT),
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or serving.done())
        if serving.done():
            await serving
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
            yield client, app
    finally:
        server.should_exit = True
        await serving


async def test_predictions_come_from_actors() -> None:
    """/work and /urgent answer with a prediction made in an actor's process; /stats counts."""
    async with serve(actor_options={"num_cpus": 0.5}) as (client, _):
        work = (await client.get("/work/7", params={"delay": 0})).json()
        assert work["input"] == 7
        assert work["output"] == 49
        assert work["model"] != os.getpid()  # computed in another process
        urgent = (await client.get("/urgent/3", params={"delay": 0})).json()
        assert urgent["output"] == 9
        stats = (await client.get("/stats")).json()
        assert stats["stats"]["active_workers"] >= 1
        assert stats["metrics"]["total_tasks_completed"] == 2
    await eventually(lambda: live_actors("RayModel") == [])  # stopped with the server


async def test_a_client_that_goes_away_cancels_the_remote_call() -> None:
    """A client that disconnects mid-prediction cancels the actor's call; the model serves on."""
    # cancel_timeout 10 s < WAIT: an actor whose call was not cancelled would be killed,
    # and the last request would come from a new model; a slow machine changes nothing.
    settings = {"worker_count": 1, "max_worker_count": 1, "cancel_timeout": 10.0}
    async with serve(actor_options={"num_cpus": 0.5}, **settings) as (client, app):
        model = (await client.get("/work/1", params={"delay": 0})).json()["model"]
        manager: TaskManager[Any, Any] = app.state.task_manager
        slow = asyncio.create_task(client.get("/work/2", params={"delay": 60}))
        await eventually(lambda: manager.stats().running_tasks == 1)
        slow.cancel()  # closes the connection: the server sees http.disconnect
        with pytest.raises(asyncio.CancelledError):
            await slow
        async with asyncio.timeout(WAIT):  # a 60 s call that went on would block this
            answer = (await client.get("/work/3", params={"delay": 0})).json()
        assert answer == {"input": 3, "output": 9, "model": model}  # same actor, not killed
