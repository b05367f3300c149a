"""FastAPI + tasker_aio: HTTP endpoints served by a pool of (fake) model handles.

Run it (needs the ``web`` extra: ``pip install "tasker-aio[web]"``)::

    python -m examples.fastapi_app       # from the repository root
    curl 'http://127.0.0.1:8000/work/7?delay=0.5'   # {"input":7,"output":49,"model":3}
    curl 'http://127.0.0.1:8000/urgent/7'           # the same, through the priority queue
    curl 'http://127.0.0.1:8000/stats'              # {"stats":{...},"metrics":{...}}

The TaskManager is started and stopped by the app's ``lifespan``: the server starts
answering once every worker holds a loaded model, and on shutdown (Ctrl+C) uvicorn first
lets the requests in progress finish, then ``stop()`` drains the queues and unloads every
model.

A client that goes away: neither uvicorn nor Starlette cancels a handler whose client has
disconnected or timed out (checked with uvicorn 0.54, Starlette 1.10, FastAPI 0.165: the
handler goes on waiting, and its task still runs). :func:`cancel_on_disconnect` watches
the ASGI ``receive`` channel for ``http.disconnect`` and cancels the waiting call itself;
tasker_aio then discards the task if it is still queued, or cancels it if it is running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any, TypeVar

import anyio
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from examples.models import Model, ModelLoader, Prediction, Probe
from tasker_aio import Config, TaskManager

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before its answer was ready."""


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first.

    Raises:
        ClientDisconnected: the client disconnected (or timed out) and ``work`` was
            cancelled: a queued task is discarded, a running one cancelled.
    """
    with anyio.CancelScope() as scope:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            scope.cancel()  # cancels `await work` below

        watcher = asyncio.create_task(watch())
        try:
            return await work  # its errors propagate unchanged
        finally:
            watcher.cancel()
    raise ClientDisconnected  # reached only when the scope cancelled `await work`


async def get_manager(request: Request) -> TaskManager[Model, Prediction]:
    manager: TaskManager[Model, Prediction] = request.app.state.manager
    return manager


Manager = Annotated[TaskManager[Model, Prediction], Depends(get_manager)]
Delay = Annotated[float, Query(ge=0, le=60, description="seconds the prediction takes")]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the task manager before the first request; stop it after the last."""
    loader: ModelLoader = app.state.loader
    config = Config(on_create=loader.load, on_destroy=loader.unload, **app.state.settings)
    async with TaskManager[Model, Prediction](config) as manager:
        app.state.manager = manager
        yield


router = APIRouter()


@router.get("/work/{n}")
async def work(request: Request, manager: Manager, n: int, delay: Delay = 0.01) -> Prediction:
    """Run a prediction on the main queue; a client that goes away cancels it."""
    prediction = manager.queue_task(lambda model: model.predict(n, delay))
    return await cancel_on_disconnect(request, prediction)


@router.get("/urgent/{n}")
async def urgent(request: Request, manager: Manager, n: int, delay: Delay = 0.01) -> Prediction:
    """The same on the priority queue: it runs before anything on the main queue."""
    prediction = manager.queue_task_with_priority(lambda model: model.predict(n, delay))
    return await cancel_on_disconnect(request, prediction)


@router.get("/stats")
async def stats(manager: Manager) -> dict[str, dict[str, Any]]:
    """Workers and queues (``stats()``), latencies and counts (``metrics()``)."""
    return {"stats": asdict(manager.stats()), "metrics": asdict(manager.metrics())}


async def client_gone(request: Request, exc: Exception) -> Response:
    probe: Probe = request.app.state.probe
    probe.note(probe.disconnected, int(request.path_params["n"]))
    return Response(status_code=499)  # "client closed request": nobody reads it


def create_app(*, load_cost: float = 0.02, **config_overrides: Any) -> FastAPI:
    """Build the app; ``config_overrides`` go to :class:`tasker_aio.Config`."""
    app = FastAPI(title="tasker_aio demo", lifespan=lifespan)
    app.state.probe = probe = Probe()
    app.state.loader = ModelLoader(probe, load_cost)
    app.state.settings = {"worker_count": 2, "max_worker_count": 4, **config_overrides}
    app.include_router(router)
    app.add_exception_handler(ClientDisconnected, client_gone)
    return app


app = create_app()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=8000)
