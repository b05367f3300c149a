"""The FastAPI and aiohttp examples, served for real on 127.0.0.1 and called over HTTP.

Each test serves ``examples/fastapi_app.py`` under uvicorn (client: httpx) or
``examples/aiohttp_app.py`` under ``web.AppRunner`` (client: aiohttp) on a free port,
inside the test's own event loop (see ``tests/served.py``), so it can look at the app's
task manager, its model loader and its probe (an ``asyncio.Event`` gate that holds
tasks, and a record of what ran, what finished and which clients went away) directly;
an :class:`Arrivals` metrics collector tells when a request's task has been queued.

``test_abandoned_requests`` reproduces the measurement of issue 17 in a bounded,
deterministic form, with and without the library's protection: uvicorn/Starlette never
cancel a handler whose client left (so the example awaits through
``tasker_aio.fastapi.cancel_on_disconnect``), and aiohttp cancels it only with
``handler_cancellation=True``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("aiohttp")
pytest.importorskip("prometheus_client")

import aiohttp
import httpx
from aiohttp import web
from fastapi import FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families

from examples import aiohttp_app, fastapi_app
from examples.models import Model, ModelLoader, Prediction, Probe
from tasker_aio import Config, TaskManager, TaskMetrics, TaskStats
from tasker_aio.fastapi import get_task_manager

from .served import (
    WAIT,
    AiohttpServer,
    Arrivals,
    UvicornServer,
    eventually,
    serve_aiohttp,
    serve_asgi,
)

pytestmark = pytest.mark.web

ONE_WORKER = {"worker_count": 1, "max_worker_count": 1}  # no bursting: the order is fixed
TWO_WORKERS = {"worker_count": 2, "max_worker_count": 2}
CLIENT_TIMEOUT = 0.3  # seconds: the client timeout; tasks are gated far longer


def settings(**overrides: Any) -> dict[str, Any]:
    """``create_app`` arguments: quick model loads and an :class:`Arrivals` collector."""
    return {"load_cost": 0.005, "collector": Arrivals(), **overrides}


async def until(probe: Probe, condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` to hold, woken by each thing the app records."""
    async with asyncio.timeout(WAIT):
        await probe.wait_until(condition)


class Served(ABC):
    """An example app being served on 127.0.0.1, with a client connected to it."""

    invalid_status: int  # answer to a request with a bad query parameter
    timeout_errors: tuple[type[BaseException], ...]  # what the client raises on a timeout
    server: UvicornServer | AiohttpServer

    def __init__(self, probe: Probe, loader: ModelLoader, config: Config[Model]) -> None:
        self.probe = probe
        self.loader = loader
        arrivals = config.collector
        assert isinstance(arrivals, Arrivals), "build the app with settings()"
        self.arrivals = arrivals

    @property
    @abstractmethod
    def manager(self) -> TaskManager[Model, Prediction]: ...

    @abstractmethod
    async def get(self, path: str, *, client_timeout: float = WAIT) -> tuple[int, Any]:
        """GET ``path``; return the status and the decoded JSON body (None if empty)."""

    def closing(self) -> bool:
        """True once the server has stopped listening (its shutdown has begun)."""
        return self.server.closing()

    async def shutdown(self) -> None:
        """Shut the server down gracefully, as on Ctrl+C, and wait until it is done."""
        await self.server.shutdown()


class FastAPIServed(Served):
    invalid_status = 422
    timeout_errors = (httpx.TimeoutException,)

    def __init__(self, app: FastAPI, server: UvicornServer, client: httpx.AsyncClient) -> None:
        super().__init__(app.state.probe, app.state.loader, app.state.config)
        self.app = app
        self.server = server
        self.client = client

    @property
    def manager(self) -> TaskManager[Model, Prediction]:
        manager: TaskManager[Model, Prediction] = self.app.state.task_manager
        return manager

    async def get(self, path: str, *, client_timeout: float = WAIT) -> tuple[int, Any]:
        response = await self.client.get(path, timeout=client_timeout)
        return response.status_code, response.json() if response.content else None


class AiohttpServed(Served):
    invalid_status = 400
    timeout_errors = (asyncio.TimeoutError,)

    def __init__(
        self, app: web.Application, server: AiohttpServer, session: aiohttp.ClientSession
    ) -> None:
        super().__init__(app[aiohttp_app.PROBE], app[aiohttp_app.LOADER], app[aiohttp_app.CONFIG])
        self.app = app
        self.server = server
        self.session = session

    @property
    def manager(self) -> TaskManager[Model, Prediction]:
        return self.app[aiohttp_app.MANAGER]

    async def get(self, path: str, *, client_timeout: float = WAIT) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=client_timeout)
        async with self.session.get(path, timeout=timeout) as response:
            body = await response.read()
            return response.status, await response.json() if body else None


@asynccontextmanager
async def serve_fastapi(app: FastAPI) -> AsyncIterator[FastAPIServed]:
    """Serve the FastAPI example ``app`` under uvicorn, with an httpx client."""
    async with (
        serve_asgi(app) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        served = FastAPIServed(app, server, client)
        try:
            yield served
        finally:
            served.probe.gate.set()  # let held tasks finish


@asynccontextmanager
async def serve_aiohttp_example(
    app: web.Application, *, handler_cancellation: bool = True
) -> AsyncIterator[AiohttpServed]:
    """Serve the aiohttp example ``app`` with ``web.AppRunner``, with an aiohttp client."""
    async with (
        serve_aiohttp(app, handler_cancellation=handler_cancellation) as server,
        aiohttp.ClientSession(server.url) as session,
    ):
        served = AiohttpServed(app, server, session)
        try:
            yield served
        finally:
            served.probe.gate.set()  # let held tasks finish


@asynccontextmanager
async def serve(framework: str, **overrides: Any) -> AsyncIterator[Served]:
    """Serve the ``framework`` example built with ``create_app(**overrides)``."""
    served: Served
    if framework == "fastapi":
        async with serve_fastapi(fastapi_app.create_app(**settings(**overrides))) as served:
            yield served
    else:
        app = aiohttp_app.create_app(**settings(**overrides))
        async with serve_aiohttp_example(app) as served:
            yield served


async def abandon(served: Served, path: str, how: str) -> None:
    """GET ``path`` with the short client timeout, or until this task is cancelled."""
    if how == "timeout":
        with pytest.raises(served.timeout_errors):
            await served.get(path, client_timeout=CLIENT_TIMEOUT)
    else:
        await served.get(path)
        pytest.fail("the request was meant to be cancelled")


@pytest.fixture(params=["fastapi", "aiohttp"])
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def test_work_returns_the_task_value(framework: str) -> None:
    """GET /work/{n} answers with what the task returned, computed on a worker's model."""
    async with serve(framework) as served:
        status, body = await served.get("/work/7?delay=0")
        assert status == 200
        assert body["input"] == 7
        assert body["output"] == 49
        assert body["model"] in served.loader.loaded
        assert served.probe.ran == [7]
        status, _ = await served.get("/work/7?delay=-1")
        assert status == served.invalid_status
        assert served.probe.ran == [7]  # a rejected request submits nothing


async def test_urgent_runs_before_queued_work(framework: str) -> None:
    """GET /urgent/{n} uses the priority queue: it runs before earlier queued /work."""
    async with serve(framework, **ONE_WORKER) as served:
        probe = served.probe
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            first = requests.create_task(served.get("/work/1"))
            await until(probe, lambda: probe.ran == [1])
            queued = requests.create_task(served.get("/work/2"))
            await served.arrivals.wait_for(2)
            urgent = requests.create_task(served.get("/urgent/3"))
            await served.arrivals.wait_for(3)
            stats = served.manager.stats()
            assert (stats.queued_tasks, stats.priority_tasks) == (1, 1)
            probe.gate.set()
        assert probe.ran == [1, 3, 2]
        for request, n in ((first, 1), (queued, 2), (urgent, 3)):
            status, body = request.result()
            assert status == 200
            assert (body["input"], body["output"]) == (n, n * n)


async def test_stats_returns_every_field(framework: str) -> None:
    """GET /stats returns every TaskStats and TaskMetrics field, with live values."""
    async with serve(framework) as served:
        assert (await served.get("/work/2"))[0] == 200
        status, body = await served.get("/stats")
        assert status == 200
        assert set(body) == {"stats", "metrics"}
        assert set(body["stats"]) == {field.name for field in dataclasses.fields(TaskStats)}
        assert set(body["metrics"]) == {field.name for field in dataclasses.fields(TaskMetrics)}
        assert body["stats"]["base_workers"] == 2
        assert body["stats"]["queued_tasks"] == 0
        assert body["metrics"]["total_tasks_arrived"] == 1
        assert body["metrics"]["total_tasks_completed"] == 1
        assert body["metrics"]["success_rate"] == 1.0
        assert body["metrics"]["max_execution_time"] >= body["metrics"]["min_execution_time"] > 0


async def test_metrics_serves_the_managers_metrics_to_prometheus() -> None:
    """GET /metrics (FastAPI): counts, histograms and gauges of the app's manager."""
    app = fastapi_app.create_app(load_cost=0.005)  # the default collector: histograms too
    async with serve_asgi(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        for n in (2, 3):
            assert (await client.get(f"/work/{n}?delay=0")).status_code == 200
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    pool = ("pool", "models")
    assert samples["tasker_tasks_arrived_total", (pool,)] == 2
    assert samples["tasker_tasks_completed_total", (pool,)] == 2
    assert samples["tasker_task_execution_seconds_count", (pool,)] == 2
    assert samples["tasker_task_queue_wait_seconds_bucket", (("le", "+Inf"), pool)] == 2
    assert samples["tasker_workers", (("kind", "base"), pool)] == 2
    assert samples["tasker_running_tasks", (pool,)] == 0
    assert list(app.state.registry.collect()) == []  # the lifespan closed the exporter


@pytest.mark.parametrize("how", ["timeout", "disconnect"])
async def test_client_gone_while_queued_discards_task(framework: str, how: str) -> None:
    """A client that times out or disconnects while its task is queued: it never runs."""
    async with serve(framework, **ONE_WORKER) as served:
        probe = served.probe
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            busy = requests.create_task(served.get("/work/1"))
            await until(probe, lambda: probe.ran == [1])  # the only worker is taken
            gone = requests.create_task(abandon(served, "/work/2", how))
            await served.arrivals.wait_for(2)
            assert served.manager.stats().queued_tasks == 1
            if how == "disconnect":
                gone.cancel()  # the client closes its connection
            await until(probe, lambda: 2 in probe.disconnected)
            assert served.manager.stats().queued_tasks == 0  # discarded at once
            probe.gate.set()
        assert busy.result()[0] == 200
        assert (await served.get("/work/3"))[0] == 200  # the worker ran the next task
        assert probe.ran == [1, 3]  # task 2 never ran
        metrics = (await served.get("/stats"))[1]["metrics"]
        assert metrics["total_tasks_arrived"] == 3
        assert metrics["total_tasks_completed"] == 2
        assert metrics["total_tasks_failed"] == 0  # a discarded task is not a failure


async def test_client_gone_while_running_cancels_task(framework: str) -> None:
    """A client that disconnects while its task runs: the task is cancelled, the worker goes on."""
    async with serve(framework, **ONE_WORKER) as served:
        probe = served.probe
        probe.gate.clear()
        gone = asyncio.create_task(served.get("/work/1"))
        try:
            await until(probe, lambda: probe.ran == [1])
        finally:
            gone.cancel()  # the client closes its connection
            await asyncio.wait([gone])
        await until(probe, lambda: 1 in probe.disconnected)
        probe.gate.set()
        status, body = await served.get("/work/2")  # runs once the worker is free again
        assert status == 200
        assert probe.ran == [1, 2]
        assert body["model"] in served.loader.loaded
        metrics = (await served.get("/stats"))[1]["metrics"]
        assert metrics["total_tasks_completed"] == 1
        assert metrics["total_tasks_failed"] == 1  # cancelled while running: a failure


def add_unprotected_route(app: FastAPI) -> None:
    """``GET /plain/{n}``: ``/work/{n}`` as the obvious handler writes it, unprotected.

    It awaits ``manager.queue_task`` directly (no ``cancel_on_disconnect``), and only
    records when uvicorn reports the client gone, without acting on it.
    """
    probe: Probe = app.state.probe

    async def plain(request: Request, n: int) -> Prediction:
        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            probe.note(probe.disconnected, n)

        watcher = asyncio.create_task(watch())
        try:
            manager: TaskManager[Model, Prediction] = await get_task_manager(request)
            return await manager.queue_task(lambda model: model.predict(n, 0))
        finally:
            watcher.cancel()

    app.add_api_route("/plain/{n}", plain)


@asynccontextmanager
async def serve_for_measurement(framework: str, protected: bool) -> AsyncIterator[Served]:
    """The example on two workers; ``protected=False`` is the app built the obvious way."""
    served: Served
    if framework == "fastapi":
        app = fastapi_app.create_app(**settings(**TWO_WORKERS))
        add_unprotected_route(app)
        async with serve_fastapi(app) as served:
            yield served
    else:
        example = aiohttp_app.create_app(**settings(**TWO_WORKERS))
        async with serve_aiohttp_example(example, handler_cancellation=protected) as served:
            yield served


@pytest.mark.parametrize("protected", [True, False], ids=["protected", "unprotected"])
async def test_abandoned_requests(framework: str, protected: bool) -> None:
    """Issue 17's measurement: requests whose clients time out never run to completion.

    24 requests while tasks are held at the gate; every other client gives up after
    0.3 s. Protected (``cancel_on_disconnect``; ``handler_cancellation=True``), none of
    the abandoned tasks completes and the patient ones all do. Unprotected (the handler
    awaits ``queue_task`` directly; aiohttp's default), every abandoned task still runs
    to completion once the gate opens: the behaviour the issue measured.
    """
    count = 24
    abandoned = set(range(1, count + 1, 2))
    patient = set(range(2, count + 1, 2))
    path = "/work" if protected or framework == "aiohttp" else "/plain"
    async with serve_for_measurement(framework, protected) as served:
        probe, manager = served.probe, served.manager
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            answers = {n: requests.create_task(served.get(f"{path}/{n}?delay=0")) for n in patient}
            gone = [
                requests.create_task(abandon(served, f"{path}/{n}", "timeout")) for n in abandoned
            ]
            await served.arrivals.wait_for(count)
            await asyncio.wait(gone)  # every abandoned client has timed out
            if protected:
                await until(probe, lambda: abandoned <= set(probe.disconnected))
                stats = manager.stats()
                assert stats.queued_tasks + stats.running_tasks <= len(patient)
            probe.gate.set()
            if not protected:
                await until(probe, lambda: abandoned <= set(probe.finished))
        for n, answer in answers.items():
            status, body = answer.result()
            assert (status, body["output"]) == (200, n * n)
        finished = set(probe.finished)
        metrics = manager.metrics()
        assert metrics.total_tasks_arrived == count
        if protected:
            assert finished == patient  # no abandoned task ran to completion
            assert metrics.total_tasks_completed == len(patient)
            # A task cancelled while running is a failure; one discarded from the queue is not.
            assert metrics.total_tasks_failed == len(abandoned & set(probe.ran))
        else:
            assert finished == patient | abandoned  # every abandoned task ran anyway
            assert metrics.total_tasks_completed == count


async def test_server_shutdown_stops_manager_gracefully(framework: str) -> None:
    """Server shutdown lets running and queued requests finish, then stops the manager."""
    async with serve(framework, **ONE_WORKER) as served:
        probe, manager = served.probe, served.manager
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            running = requests.create_task(served.get("/work/1"))
            await until(probe, lambda: probe.ran == [1])
            queued = requests.create_task(served.get("/work/2"))
            await served.arrivals.wait_for(2)
            stopping = requests.create_task(served.shutdown())
            await eventually(served.closing)  # shutdown has begun, with both in flight
            assert manager.state == "running"
            assert manager.stats().queued_tasks == 1
            probe.gate.set()
            await stopping
        for request, n in ((running, 1), (queued, 2)):
            status, body = request.result()
            assert status == 200
            assert (body["input"], body["output"]) == (n, n * n)
        assert probe.ran == [1, 2]
        assert manager.state == "stopped"
        loader = served.loader
        assert len(loader.loaded) == 2  # the pooled model and the worker's
        assert sorted(loader.unloaded) == loader.loaded  # each unloaded exactly once


async def test_uvicorn_does_not_cancel_handler_on_disconnect() -> None:
    """Pins uvicorn/Starlette: a handler whose client left is not cancelled; its task runs."""
    app = fastapi_app.create_app(**settings(**ONE_WORKER))
    add_unprotected_route(app)
    probe: Probe = app.state.probe
    async with serve_fastapi(app) as served:
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            requests.create_task(served.get("/plain/1"))
            await until(probe, lambda: probe.ran == [1])
            await abandon(served, "/plain/2", "timeout")
            await until(probe, lambda: 2 in probe.disconnected)  # uvicorn saw it go
            assert served.manager.stats().queued_tasks == 1  # ...and left its task queued
            probe.gate.set()
            await until(probe, lambda: probe.finished == [1, 2])  # the abandoned task ran


async def test_aiohttp_without_handler_cancellation_runs_abandoned_task() -> None:
    """Pins aiohttp: with handler_cancellation=False a queued task outlives its client."""
    app = aiohttp_app.create_app(**settings(**ONE_WORKER))
    async with serve_aiohttp_example(app, handler_cancellation=False) as served:
        probe = served.probe
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            requests.create_task(served.get("/work/1"))
            await until(probe, lambda: probe.ran == [1])
            await abandon(served, "/work/2", "timeout")
            assert isinstance(served.server, AiohttpServer)
            server = served.server.runner.server
            assert server is not None
            # The server saw the client go: one connection (request 1's) is left open.
            await eventually(lambda: sum(c.transport is not None for c in server.connections) == 1)
            assert served.manager.stats().queued_tasks == 1  # ...and left its task queued
            probe.gate.set()
            await until(probe, lambda: probe.finished == [1, 2])  # the abandoned task ran
        assert probe.disconnected == []  # its handler was never cancelled
