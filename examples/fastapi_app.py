"""FastAPI + tasker_aio: HTTP endpoints served by a pool of (fake) model handles.

Run it from the repository root of a checkout (the ``web`` extra adds FastAPI, uvicorn,
aiohttp and httpx)::

    python3 -m venv .venv && .venv/bin/python -m pip install -e ".[web]"
    .venv/bin/python -m examples.fastapi_app
    curl 'http://127.0.0.1:8000/work/7?delay=0.5'   # {"input":7,"output":49,"model":3}
    curl 'http://127.0.0.1:8000/urgent/7'           # the same, through the priority queue
    curl 'http://127.0.0.1:8000/stats'              # {"stats":{...},"metrics":{...}}
    curl 'http://127.0.0.1:8000/metrics'            # the same, for Prometheus to scrape

The lifespan runs the TaskManager (``run_task_manager``) and exports its metrics to the
app's Prometheus registry (``tasker_aio.prometheus``, read at each scrape): the server
starts answering once every worker holds a loaded model, and on shutdown (Ctrl+C)
uvicorn first lets the requests in progress finish, then the manager drains its queues
and unloads every model.

Uvicorn does not cancel a handler whose client disconnected or timed out, so each
handler awaits its task through ``cancel_on_disconnect``: the task is discarded if still
queued, cancelled if running, and the request is answered 499.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from examples.models import Model, ModelLoader, Prediction, Probe
from tasker_aio import Config, TaskManager, prometheus
from tasker_aio.fastapi import (
    ClientDisconnected,
    cancel_on_disconnect,
    client_disconnected_handler,
    get_task_manager,
    run_task_manager,
)

Manager = Annotated[TaskManager[Model, Prediction], Depends(get_task_manager)]
Delay = Annotated[float, Query(ge=0, le=60, description="seconds the prediction takes")]

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


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The same for Prometheus: its text format, read now from the manager and collector."""
    registry: CollectorRegistry = request.app.state.registry
    # On the manager's loop, so the exporter reads the manager directly (no thread hop).
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def client_gone(request: Request, exc: Exception) -> Response:
    """Note the request for the tests, then answer 499 as the library's handler does."""
    probe: Probe = request.app.state.probe
    probe.note(probe.disconnected, int(request.path_params["n"]))
    return await client_disconnected_handler(request, exc)


def create_app(*, load_cost: float = 0.02, **config_overrides: Any) -> FastAPI:
    """Build the app; ``config_overrides`` go to :class:`tasker_aio.Config`."""
    probe = Probe()
    loader = ModelLoader(probe, load_cost)
    settings: dict[str, Any] = {"worker_count": 2, "max_worker_count": 4, **config_overrides}
    config = Config(on_create=loader.load, on_destroy=loader.unload, **settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Run the manager (on app.state.task_manager) with its metrics exported."""
        async with run_task_manager(app, config) as manager:
            exporter = prometheus.instrument(
                manager, registry=app.state.registry, labels={"pool": "models"}
            )
            try:
                yield
            finally:
                exporter.close()

    app = FastAPI(
        title="tasker_aio demo",
        lifespan=lifespan,
        exception_handlers={ClientDisconnected: client_gone},
    )
    # The app's own registry, so that several apps (as in the tests) can live in one
    # process; most apps use prometheus_client.REGISTRY, the default of instrument().
    app.state.registry = CollectorRegistry()
    app.state.probe = probe
    app.state.loader = loader
    app.state.config = config
    app.include_router(router)
    return app


app = create_app()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=8000)
