"""aiohttp + tasker_aio: HTTP endpoints served by a pool of (fake) model handles.

Run it from the repository root of a checkout (the ``web`` extra adds FastAPI, uvicorn,
aiohttp and httpx)::

    python3 -m venv .venv && .venv/bin/python -m pip install -e ".[web]"
    .venv/bin/python -m examples.aiohttp_app
    curl 'http://127.0.0.1:8000/work/7?delay=0.5'   # {"input": 7, "output": 49, "model": 3}
    curl 'http://127.0.0.1:8000/urgent/7'           # the same, through the priority queue
    curl 'http://127.0.0.1:8000/stats'              # {"stats": {...}, "metrics": {...}}

``setup_task_manager`` runs the TaskManager on the app's ``cleanup_ctx``: it starts
before the server takes requests and, on shutdown, stops after the requests in progress
have finished, so it drains the queues and unloads every model.

The server runs with ``handler_cancellation=True`` (aiohttp's default is off since
3.8.2): then a client that goes away cancels its handler, and so its
``await manager.queue_task(...)``; the task is discarded if still queued, cancelled if
running. Without it the handler goes on waiting and the task still runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from examples.models import Model, ModelLoader, Prediction, Probe
from tasker_aio import Config, TaskManager
from tasker_aio.aiohttp import get_task_manager, setup_task_manager

MANAGER = web.AppKey("manager", TaskManager[Model, Prediction])
CONFIG = web.AppKey("config", Config[Model])
LOADER = web.AppKey("loader", ModelLoader)
PROBE = web.AppKey("probe", Probe)


def parse(request: web.Request) -> tuple[int, float]:
    """``n`` from the path and ``delay`` from the query (400 if it is not in [0, 60])."""
    try:
        delay = float(request.query.get("delay", "0.01"))
    except ValueError:
        delay = -1.0
    if not 0 <= delay <= 60:
        raise web.HTTPBadRequest(
            text=json.dumps({"detail": "delay must be a number of seconds in [0, 60]"}),
            content_type="application/json",
        )
    return int(request.match_info["n"]), delay


async def answer(request: web.Request, n: int, prediction: Awaitable[Prediction]) -> web.Response:
    """The prediction as JSON; a cancelled handler (its client left) is noted for the tests."""
    try:
        return web.json_response(await prediction)
    except asyncio.CancelledError:
        probe = request.app[PROBE]
        probe.note(probe.disconnected, n)
        raise


async def work(request: web.Request) -> web.Response:
    """Run a prediction on the main queue; a client that goes away cancels it."""
    n, delay = parse(request)
    manager = get_task_manager(request, MANAGER)
    return await answer(request, n, manager.queue_task(lambda model: model.predict(n, delay)))


async def urgent(request: web.Request) -> web.Response:
    """The same on the priority queue: it runs before anything on the main queue."""
    n, delay = parse(request)
    manager = get_task_manager(request, MANAGER)
    prediction = manager.queue_task_with_priority(lambda model: model.predict(n, delay))
    return await answer(request, n, prediction)


async def stats(request: web.Request) -> web.Response:
    """Workers and queues (``stats()``), latencies and counts (``metrics()``)."""
    manager = get_task_manager(request, MANAGER)
    return web.json_response(
        {"stats": asdict(manager.stats()), "metrics": asdict(manager.metrics())}
    )


def create_app(*, load_cost: float = 0.02, **config_overrides: Any) -> web.Application:
    """Build the app; ``config_overrides`` go to :class:`tasker_aio.Config`."""
    probe = Probe()
    loader = ModelLoader(probe, load_cost)
    settings: dict[str, Any] = {"worker_count": 2, "max_worker_count": 4, **config_overrides}
    config = Config(on_create=loader.load, on_destroy=loader.unload, **settings)
    app = web.Application()
    app[PROBE] = probe
    app[LOADER] = loader
    app[CONFIG] = config
    setup_task_manager(app, config, key=MANAGER)
    app.router.add_get(r"/work/{n:-?\d+}", work)
    app.router.add_get(r"/urgent/{n:-?\d+}", urgent)
    app.router.add_get("/stats", stats)
    return app


app = create_app()

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=8000, handler_cancellation=True)
