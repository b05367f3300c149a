"""aiohttp + tasker_aio: HTTP endpoints served by a pool of (fake) model handles.

Run it (needs the ``web`` extra: ``pip install "tasker-aio[web]"``)::

    python examples/aiohttp_app.py
    curl 'http://127.0.0.1:8000/work/7?delay=0.5'   # {"input": 7, "output": 49, "model": 1}
    curl 'http://127.0.0.1:8000/urgent/7'           # the same, through the priority queue
    curl 'http://127.0.0.1:8000/stats'              # {"stats": {...}, "metrics": {...}}

The TaskManager lives in the app's ``cleanup_ctx``: it is started before the server takes
requests and, on shutdown, stopped after the requests in progress have finished, so
``stop()`` drains the queues and unloads every model.

A client that goes away: aiohttp cancels the handler of a request whose connection is
lost only when the server runs with ``handler_cancellation=True`` (the default has been
``False`` since aiohttp 3.8.6; checked with 3.14). With it, the handler's
``await manager.queue_task(...)`` is cancelled, and tasker_aio discards the task if it
is still queued or cancels it if it is running. Without it, the handler goes on waiting
and the task still runs. So run this app with ``handler_cancellation=True``, as
``__main__`` below does (``web.AppRunner(app, handler_cancellation=True)`` likewise).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from tasker_aio import Config, TaskManager

Prediction = dict[str, int]


class Model:
    """A fake model handle: expensive to load, then cheap to call."""

    def __init__(self, ident: int) -> None:
        self.ident = ident

    async def predict(self, n: int, delay: float) -> Prediction:
        await asyncio.sleep(delay)  # pretend to run inference
        return {"input": n, "output": n * n, "model": self.ident}


class ModelLoader:
    """Loads and unloads models, keeping the ids of both for the tests to compare."""

    def __init__(self, load_cost: float = 0.02) -> None:
        self.load_cost = load_cost
        self.loaded: list[int] = []
        self.unloaded: list[int] = []
        self._ids = itertools.count(1)

    async def load(self) -> Model:
        await asyncio.sleep(self.load_cost)  # pretend to read weights
        model = Model(next(self._ids))
        self.loaded.append(model.ident)
        return model

    async def unload(self, model: Model) -> None:
        await asyncio.sleep(0)
        self.unloaded.append(model.ident)


class Probe:
    """Hooks for the tests: what the app did, and a gate that holds tasks while it is clear."""

    def __init__(self) -> None:
        self.submitted: list[int] = []  # n of each request handed to the manager
        self.ran: list[int] = []  # n of each task a worker started
        self.disconnected: list[int] = []  # n of each request whose handler was cancelled
        self.gate = asyncio.Event()  # a task returns only once this is set
        self.gate.set()
        self._changed = asyncio.Event()

    def note(self, events: list[int], n: int) -> None:
        events.append(n)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


MANAGER = web.AppKey("manager", TaskManager[Model, Prediction])
LOADER = web.AppKey("loader", ModelLoader)
PROBE = web.AppKey("probe", Probe)


def create_app(*, load_cost: float = 0.02, **config_overrides: Any) -> web.Application:
    """Build the app; ``config_overrides`` go to :class:`tasker_aio.Config`."""
    loader = ModelLoader(load_cost)
    probe = Probe()
    settings: dict[str, Any] = {"worker_count": 2, "max_worker_count": 4, **config_overrides}

    async def task_manager(app: web.Application) -> AsyncIterator[None]:
        config = Config(on_create=loader.load, on_destroy=loader.unload, **settings)
        async with TaskManager[Model, Prediction](config) as manager:
            app[MANAGER] = manager
            yield

    def predict(request: web.Request) -> tuple[int, Callable[[Model], Awaitable[Prediction]]]:
        n = int(request.match_info["n"])
        try:
            delay = float(request.query.get("delay", "0.01"))
        except ValueError:
            delay = -1.0
        if not 0 <= delay <= 60:
            raise web.HTTPBadRequest(
                text=json.dumps({"detail": "delay must be a number of seconds in [0, 60]"}),
                content_type="application/json",
            )
        probe.note(probe.submitted, n)

        async def task(model: Model) -> Prediction:
            probe.note(probe.ran, n)
            await probe.gate.wait()
            return await model.predict(n, delay)

        return n, task

    async def answer(n: int, work: Awaitable[Prediction]) -> web.Response:
        try:
            return web.json_response(await work)
        except asyncio.CancelledError:  # the client went away (handler_cancellation=True)
            probe.note(probe.disconnected, n)
            raise

    async def work(request: web.Request) -> web.Response:
        """Run a prediction on the main queue."""
        n, task = predict(request)
        return await answer(n, request.app[MANAGER].queue_task(task))

    async def urgent(request: web.Request) -> web.Response:
        """The same on the priority queue: it runs before anything on the main queue."""
        n, task = predict(request)
        return await answer(n, request.app[MANAGER].queue_task_with_priority(task))

    async def stats(request: web.Request) -> web.Response:
        """Workers and queues (``stats()``), latencies and counts (``metrics()``)."""
        manager = request.app[MANAGER]
        return web.json_response(
            {"stats": asdict(manager.stats()), "metrics": asdict(manager.metrics())}
        )

    app = web.Application()
    app[LOADER] = loader
    app[PROBE] = probe
    app.cleanup_ctx.append(task_manager)
    app.router.add_get(r"/work/{n:-?\d+}", work)
    app.router.add_get(r"/urgent/{n:-?\d+}", urgent)
    app.router.add_get("/stats", stats)
    return app


app = create_app()

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=8000, handler_cancellation=True)
