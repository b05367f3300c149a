"""Real servers on 127.0.0.1 for the web tests: uvicorn for ASGI apps, AppRunner for aiohttp.

Each server runs in a task of the test's own event loop, so a test can look at the app
and its task manager directly while requests are in flight, and shut the server down
from another task. A server is shut down gracefully on leaving its ``async with``, even
when the test failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from aiohttp import web
from starlette.types import ASGIApp

from tasker_aio import TaskLifecycleTimestamps, TaskMetrics, new_collector

WAIT = 5.0  # seconds: the longest any awaited event may take before the test fails


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll ``condition``: only for server internals that offer no event to wait on."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)


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


class UvicornServer:
    """An ASGI app served by uvicorn; ``url`` is its base URL."""

    def __init__(self, server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
        self.server = server
        self.serving = serving
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def closing(self) -> bool:
        """True once the server has stopped listening (its shutdown has begun)."""
        return not any(listener.is_serving() for listener in self.server.servers)

    async def shutdown(self) -> None:
        """Shut down gracefully, as on Ctrl+C, and wait until the lifespan has ended."""
        self.server.should_exit = True
        await self.serving


@asynccontextmanager
async def serve_asgi(app: ASGIApp, **config: Any) -> AsyncIterator[UvicornServer]:
    """Serve ``app`` under uvicorn on a free port; ``config`` goes to ``uvicorn.Config``.

    Raises:
        RuntimeError: the server did not start (its lifespan startup failed).
    """
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "lifespan": "on",
        "log_level": "warning",
        "log_config": None,
        "timeout_graceful_shutdown": int(WAIT),  # a failed test cannot hang the shutdown
        **config,
    }
    server = uvicorn.Server(uvicorn.Config(app, **settings))

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits this way when the lifespan fails
            raise RuntimeError("uvicorn failed to start") from exc

    serving = asyncio.create_task(run())
    try:
        await eventually(lambda: server.started or serving.done())
        if serving.done():
            await serving  # it failed to start: raise why
        yield UvicornServer(server, serving)
    finally:
        server.should_exit = True
        await serving


class AiohttpServer:
    """An aiohttp app served by ``web.AppRunner``; ``url`` is its base URL."""

    def __init__(
        self, runner: web.AppRunner, stop: asyncio.Event, serving: asyncio.Task[None], port: int
    ) -> None:
        self.runner = runner
        self.stop = stop
        self.serving = serving
        self.url = f"http://127.0.0.1:{port}"

    def closing(self) -> bool:
        """True once the server has stopped listening (its shutdown has begun)."""
        return not self.runner.sites

    async def shutdown(self) -> None:
        """Shut down gracefully, as ``web.run_app`` does, and wait for the cleanup_ctx."""
        self.stop.set()
        await self.serving


@asynccontextmanager
async def serve_aiohttp(
    app: web.Application, *, handler_cancellation: bool = True
) -> AsyncIterator[AiohttpServer]:
    """Serve ``app`` on a free port from a task of its own, as ``web.run_app`` does.

    ``runner.setup()`` and ``runner.cleanup()`` (which enter and leave the app's
    ``cleanup_ctx``) run in that task, so a test can shut the server down from another
    task while requests are in flight.
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
        yield AiohttpServer(runner, stop, serving, port.result())
    finally:
        stop.set()
        await serving
