"""aiohttp + tasker_aio: HTTP endpoints served by a pool of (fake) model handles.

Run it (needs the ``web`` extra: ``pip install "tasker-aio[web]"``)::

    python -m examples.aiohttp_app       # from the repository root
    curl 'http://127.0.0.1:8000/work/7?delay=0.5'   # {"input": 7, "output": 49, "model": 3}
    curl 'http://127.0.0.1:8000/urgent/7'           # the same, through the priority queue
    curl 'http://127.0.0.1:8000/stats'              # {"stats": {...}, "metrics": {...}}

The TaskManager lives in the app's ``cleanup_ctx``: it is started before the server takes
requests and, on shutdown, stopped after the requests in progress have finished, so
``stop()`` drains the queues and unloads every model.

A client that goes away: aiohttp cancels the handler of a request whose connection is
lost only when the server runs with ``handler_cancellation=True``. aiohttp stopped
cancelling by default in 3.8.2 and made it opt-in with that parameter in 3.9 (checked
with 3.14). With it, the handler's ``await manager.queue_task(...)`` is cancelled, and
tasker_aio discards the task if it is still queued, or cancels it if it is running.
Without it, the handler goes on waiting and the task still runs. So serve this app with
``handler_cancellation=True``, as ``__main__`` below does (``web.AppRunner`` takes it too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from examples.models import Model, ModelLoader, Prediction, Probe
from tasker_aio import Config, TaskManager

MANAGER = web.AppKey("manager", TaskManager[Model, Prediction])
SETTINGS = web.AppKey("settings", dict[str, Any])
LOADER = web.AppKey("loader", ModelLoader)
PROBE = web.AppKey("probe", Probe)


async def task_manager(app: web.Application) -> AsyncIterator[None]:
    """Start the task manager before the first request; stop it after the last."""
    loader = app[LOADER]
    config = Config(on_create=loader.load, on_destroy=loader.unload, **app[SETTINGS])
    async with TaskManager[Model, Prediction](config) as manager:
        app[MANAGER] = manager
        yield


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
    try:
        return web.json_response(await prediction)
    except asyncio.CancelledError:  # the client went away (handler_cancellation=True)
        probe = request.app[PROBE]
        probe.note(probe.disconnected, n)
        raise


async def work(request: web.Request) -> web.Response:
    """Run a prediction on the main queue; a client that goes away cancels it."""
    n, delay = parse(request)
    prediction = request.app[MANAGER].queue_task(lambda model: model.predict(n, delay))
    return await answer(request, n, prediction)


async def urgent(request: web.Request) -> web.Response:
    """The same on the priority queue: it runs before anything on the main queue."""
    n, delay = parse(request)
    manager = request.app[MANAGER]
    prediction = manager.queue_task_with_priority(lambda model: model.predict(n, delay))
    return await answer(request, n, prediction)


async def stats(request: web.Request) -> web.Response:
    """Workers and queues (``stats()``), latencies and counts (``metrics()``)."""
    manager = request.app[MANAGER]
    body = {"stats": asdict(manager.stats()), "metrics": asdict(manager.metrics())}
    return web.json_response(body)


def create_app(*, load_cost: float = 0.02, **config_overrides: Any) -> web.Application:
    """Build the app; ``config_overrides`` go to :class:`tasker_aio.Config`."""
    app = web.Application()
    app[PROBE] = probe = Probe()
    app[LOADER] = ModelLoader(probe, load_cost)
    app[SETTINGS] = {"worker_count": 2, "max_worker_count": 4, **config_overrides}
    app.cleanup_ctx.append(task_manager)
    app.router.add_get(r"/work/{n:-?\d+}", work)
    app.router.add_get(r"/urgent/{n:-?\d+}", urgent)
    app.router.add_get("/stats", stats)
    return app


app = create_app()

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=8000, handler_cancellation=True)
