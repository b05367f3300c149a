"""The FastAPI and aiohttp examples, served for real on 127.0.0.1 and called over HTTP.

Each test starts ``examples/fastapi_app.py`` under uvicorn (client: httpx) or
``examples/aiohttp_app.py`` under ``web.AppRunner`` (client: aiohttp) on a free port,
inside the test's own event loop, so it can look at the app's task manager, its model
loader and its probe (an ``asyncio.Event`` gate that holds tasks, and a record of what
ran and which clients went away) directly; an :class:`Arrivals` metrics collector tells
when a request's task has been queued. Servers are shut down even when a test fails.

The last two tests pin what the frameworks themselves do when a client goes away,
which is why the examples do what they do: uvicorn/Starlette never cancel the handler
(so ``fastapi_app.cancel_on_disconnect`` watches for ``http.disconnect``), and aiohttp
cancels it only with ``handler_cancellation=True``.
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

import aiohttp
import httpx
import uvicorn
from aiohttp import web
from fastapi import FastAPI, Request

from examples import aiohttp_app, fastapi_app
from examples.models import Model, ModelLoader, Probe
from tasker_aio import (
    TaskLifecycleTimestamps,
    TaskManager,
    TaskMetrics,
    TaskStats,
    new_collector,
)

pytestmark = pytest.mark.web

Loader = ModelLoader
WAIT = 5.0  # seconds: the longest any awaited event may take before the test fails


class Arrivals:
    """The default metrics collector, also waking waiters at each arrival (a task queued)."""

    def __init__(self) -> None:
        self._collector = new_collector()
        self.count = 0
        self._changed = asyncio.Event()

    def record_arrival(self) -> None:
        self._collector.record_arrival()
        self.count += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def record_completion(self, stamps: TaskLifecycleTimestamps) -> None:
        self._collector.record_completion(stamps)

    def record_failure(self, stamps: TaskLifecycleTimestamps) -> None:
        self._collector.record_failure(stamps)

    def record_retry(self) -> None:
        self._collector.record_retry()

    def metrics(self) -> TaskMetrics:
        return self._collector.metrics()

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` tasks in all have been accepted into the queues."""
        async with asyncio.timeout(WAIT):
            while self.count < count:
                await self._changed.wait()


def settings(**overrides: Any) -> dict[str, Any]:
    """``create_app`` arguments: quick model loads and an :class:`Arrivals` collector."""
    return {"load_cost": 0.005, "collector": Arrivals(), **overrides}


ONE_WORKER = {"worker_count": 1, "max_worker_count": 1}  # no bursting: the order is fixed


async def until(probe: Probe, condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` to hold, woken by each thing the app records."""
    async with asyncio.timeout(WAIT):
        await probe.wait_until(condition)


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll ``condition``: only for server internals that offer no event to wait on."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)


class Served(ABC):
    """An example app being served on 127.0.0.1, with a client connected to it."""

    invalid_status: int  # answer to a request with a bad query parameter
    timeout_errors: tuple[type[BaseException], ...]  # what the client raises on a timeout

    def __init__(self, probe: Probe, loader: Loader, config: dict[str, Any]) -> None:
        self.probe = probe
        self.loader = loader
        arrivals = config["collector"]
        assert isinstance(arrivals, Arrivals), "build the app with settings()"
        self.arrivals = arrivals

    @property
    @abstractmethod
    def manager(self) -> TaskManager[Any, Any]: ...

    @abstractmethod
    async def get(self, path: str, *, client_timeout: float = WAIT) -> tuple[int, Any]:
        """GET ``path``; return the status and the decoded JSON body (None if empty)."""

    @abstractmethod
    def closing(self) -> bool:
        """True once the server has stopped listening (its shutdown has begun)."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Shut the server down gracefully, as on Ctrl+C, and wait until it is done."""


class UvicornServed(Served):
    invalid_status = 422
    timeout_errors = (httpx.TimeoutException,)

    def __init__(
        self,
        app: FastAPI,
        server: uvicorn.Server,
        serving: asyncio.Task[None],
        client: httpx.AsyncClient,
    ) -> None:
        super().__init__(app.state.probe, app.state.loader, app.state.settings)
        self.app = app
        self.server = server
        self.serving = serving
        self.client = client

    @property
    def manager(self) -> TaskManager[Any, Any]:
        manager: TaskManager[Any, Any] = self.app.state.manager
        return manager

    async def get(self, path: str, *, client_timeout: float = WAIT) -> tuple[int, Any]:
        response = await self.client.get(path, timeout=client_timeout)
        return response.status_code, response.json() if response.content else None

    def closing(self) -> bool:
        return not any(listener.is_serving() for listener in self.server.servers)

    async def shutdown(self) -> None:
        self.server.should_exit = True
        await self.serving


class AiohttpServed(Served):
    invalid_status = 400
    timeout_errors = (asyncio.TimeoutError,)

    def __init__(
        self,
        app: web.Application,
        runner: web.AppRunner,
        stop: asyncio.Event,
        serving: asyncio.Task[None],
        session: aiohttp.ClientSession,
    ) -> None:
        super().__init__(app[aiohttp_app.PROBE], app[aiohttp_app.LOADER], app[aiohttp_app.SETTINGS])
        self.app = app
        self.runner = runner
        self.stop = stop
        self.serving = serving
        self.session = session

    @property
    def manager(self) -> TaskManager[Any, Any]:
        return self.app[aiohttp_app.MANAGER]

    async def get(self, path: str, *, client_timeout: float = WAIT) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=client_timeout)
        async with self.session.get(path, timeout=timeout) as response:
            body = await response.read()
            return response.status, await response.json() if body else None

    def closing(self) -> bool:
        return not self.runner.sites

    async def shutdown(self) -> None:
        self.stop.set()
        await self.serving


@asynccontextmanager
async def serve_fastapi(app: FastAPI) -> AsyncIterator[UvicornServed]:
    """Serve ``app`` under uvicorn on a free port; stop it gracefully on the way out."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        log_config=None,
        timeout_graceful_shutdown=int(WAIT),  # a failed test cannot hang the shutdown
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits this way when the lifespan fails
            raise RuntimeError("uvicorn failed to start") from exc

    serving = asyncio.create_task(run())
    try:
        await eventually(lambda: server.started or serving.done())
        if serving.done():
            await serving
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            served = UvicornServed(app, server, serving, client)
            try:
                yield served
            finally:
                served.probe.gate.set()  # let held tasks finish
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def serve_aiohttp(
    app: web.Application, *, handler_cancellation: bool = True
) -> AsyncIterator[AiohttpServed]:
    """Serve ``app`` on a free port from a task of its own, as ``web.run_app`` does.

    ``runner.setup()`` and ``runner.cleanup()`` (which enter and leave the app's
    ``cleanup_ctx``, and so start and stop the TaskManager) run in that task, so a test
    can shut the server down from another task while requests are in flight.
    """
    runner = web.AppRunner(
        app, handler_cancellation=handler_cancellation, shutdown_timeout=WAIT, access_log=None
    )
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def run() -> None:
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port.set_result(runner.addresses[0][1])
            await stop.wait()
        finally:
            await runner.cleanup()

    serving = asyncio.create_task(run())
    try:
        async with asyncio.timeout(WAIT):
            either: list[asyncio.Future[Any]] = [port, serving]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            await serving  # it failed to start: raise why
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port.result()}") as session:
            served = AiohttpServed(app, runner, stop, serving, session)
            try:
                yield served
            finally:
                served.probe.gate.set()  # let held tasks finish
    finally:
        stop.set()
        await serving


@asynccontextmanager
async def serve(framework: str, **overrides: Any) -> AsyncIterator[Served]:
    """Serve the ``framework`` example built with ``create_app(**overrides)``."""
    served: Served
    if framework == "fastapi":
        async with serve_fastapi(fastapi_app.create_app(**settings(**overrides))) as served:
            yield served
    else:
        async with serve_aiohttp(aiohttp_app.create_app(**settings(**overrides))) as served:
            yield served


async def abandon(served: Served, path: str, how: str) -> None:
    """GET ``path`` with a short client timeout, or until this task is cancelled."""
    if how == "timeout":
        with pytest.raises(served.timeout_errors):
            await served.get(path, client_timeout=0.3)
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
    probe: Probe = app.state.probe

    async def plain(request: Request, n: int) -> dict[str, int]:
        """/work/{n} without cancel_on_disconnect: it only records the disconnect."""

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            probe.note(probe.disconnected, n)

        watcher = asyncio.create_task(watch())
        try:
            manager: TaskManager[Model, dict[str, int]] = request.app.state.manager
            return await manager.queue_task(lambda model: model.predict(n, 0))
        finally:
            watcher.cancel()

    app.add_api_route("/plain/{n}", plain)
    async with serve_fastapi(app) as served:
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            requests.create_task(served.get("/plain/1"))
            await until(probe, lambda: probe.ran == [1])
            await abandon(served, "/plain/2", "timeout")
            await until(probe, lambda: 2 in probe.disconnected)  # uvicorn saw it go
            assert served.manager.stats().queued_tasks == 1  # ...and left its task queued
            probe.gate.set()
            await until(probe, lambda: probe.ran == [1, 2])  # the abandoned task still ran


async def test_aiohttp_without_handler_cancellation_runs_abandoned_task() -> None:
    """Pins aiohttp: with handler_cancellation=False a queued task outlives its client."""
    app = aiohttp_app.create_app(**settings(**ONE_WORKER))
    async with serve_aiohttp(app, handler_cancellation=False) as served:
        probe = served.probe
        probe.gate.clear()
        async with asyncio.TaskGroup() as requests:
            requests.create_task(served.get("/work/1"))
            await until(probe, lambda: probe.ran == [1])
            await abandon(served, "/work/2", "timeout")
            server = served.runner.server
            assert server is not None
            # The server saw the client go: one connection (request 1's) is left open.
            await eventually(lambda: sum(c.transport is not None for c in server.connections) == 1)
            assert served.manager.stats().queued_tasks == 1  # ...and left its task queued
            probe.gate.set()
            await until(probe, lambda: probe.ran == [1, 2])  # the abandoned task still ran
        assert probe.disconnected == []  # its handler was never cancelled
