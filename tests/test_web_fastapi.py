"""tasker_aio.fastapi: the lifespan, the dependency and cancel_on_disconnect.

Most tests serve a small Starlette or FastAPI app under uvicorn on 127.0.0.1 (see
``tests/served.py``) and talk to it over HTTP; the last few call
``cancel_on_disconnect`` on a hand-built request whose ASGI ``receive`` the test
controls, to pin orderings a real server cannot produce on demand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from tasker_aio import Config, ManagerStoppedError, TaskManager
from tasker_aio.fastapi import (
    ClientDisconnected,
    cancel_on_disconnect,
    client_disconnected_handler,
    get_task_manager,
    run_task_manager,
    task_manager_dependency,
    task_manager_lifespan,
)

from .helpers import Resource, Tracker, use
from .served import WAIT, Arrivals, eventually, serve_asgi

pytestmark = pytest.mark.web

Manager = Annotated[TaskManager[Resource, int], Depends(get_task_manager)]
Other = Annotated[TaskManager[Resource, int], Depends(task_manager_dependency("other"))]


class Notes:
    """What the app did, in order, with a way to wait for the next note."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._changed = asyncio.Event()

    def add(self, event: str) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, event: str) -> None:
        async with asyncio.timeout(WAIT):
            while event not in self.events:
                await self._changed.wait()


def make_config(tracker: Tracker, **overrides: Any) -> Config[Resource]:
    settings: dict[str, Any] = {
        "on_create": tracker.create,
        "on_destroy": tracker.destroy,
        "worker_count": 1,
        "resource_pool_size": 0,
        "burst_interval": None,
        "collector": Arrivals(),
        **overrides,
    }
    return Config(**settings)


def manager_of(app: Starlette, name: str = "task_manager") -> TaskManager[Resource, Any]:
    manager: TaskManager[Resource, Any] = getattr(app.state, name)
    return manager


@asynccontextmanager
async def client_for(app: Starlette, **config: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` under uvicorn; yield an httpx client for it."""
    async with (
        serve_asgi(app, **config) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client,
    ):
        yield client


# ------------------------------------------------------------------------- lifespan


async def test_lifespan_runs_a_manager_for_a_starlette_app(tracker: Tracker) -> None:
    """Plain Starlette: the manager runs while the app serves; shutdown destroys every resource."""

    async def ident(request: Request) -> JSONResponse:
        manager = await get_task_manager(request)
        return JSONResponse(
            await manager.queue_task(lambda resource: use(resource.ident)(resource))
        )

    config = make_config(tracker, worker_count=2, resource_pool_size=1)
    app = Starlette(routes=[Route("/ident", ident)], lifespan=task_manager_lifespan(config))
    async with serve_asgi(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        manager = manager_of(app)
        assert manager.state == "running"
        assert tracker.alive == 3  # two workers and one pooled resource
        response = await client.get("/ident")
        assert response.status_code == 200
        assert response.json() in [resource.ident for resource in tracker.created]
        await server.shutdown()
    assert manager.state == "stopped"
    assert tracker.alive == 0
    tracker.assert_balanced()


async def test_lifespan_wraps_the_apps_own_lifespan(tracker: Tracker) -> None:
    """The app's lifespan starts first and stops last; its state reaches requests."""
    notes = Notes()

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        notes.add("own startup")
        app.state.workers = 2  # something the manager's config is built from
        yield {"greeting": "hello"}
        notes.add(f"own shutdown, manager {manager_of(app).state}")

    def config_for(app: FastAPI) -> Config[Resource]:
        notes.add("config built")
        return make_config(tracker, worker_count=app.state.workers)

    app = FastAPI(lifespan=task_manager_lifespan(config_for, lifespan=own))

    @app.get("/")
    async def hello(request: Request, manager: Manager) -> dict[str, Any]:
        return {"greeting": request.state.greeting, "workers": manager.stats().base_workers}

    async with serve_asgi(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/")).json() == {"greeting": "hello", "workers": 2}
        await server.shutdown()
    assert notes.events == ["own startup", "config built", "own shutdown, manager stopped"]
    tracker.assert_balanced()


async def test_run_task_manager_inside_the_apps_lifespan(tracker: Tracker) -> None:
    """run_task_manager inside an app's lifespan: the app can use the manager at startup."""
    warmed: list[int] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_task_manager(app, make_config(tracker)) as manager:
            warmed.append(await manager.queue_task(use(7)))
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def run(manager: Manager) -> int:
        return await manager.queue_task(use(8))

    async with client_for(app) as client:
        assert warmed == [7]
        assert (await client.get("/")).json() == 8
    assert manager_of(app).state == "stopped"
    tracker.assert_balanced()


async def test_failed_start_unwinds_the_apps_lifespan(tracker: Tracker) -> None:
    """An on_create failure fails the server's startup; the app's lifespan is still closed."""
    notes = Notes()

    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            notes.add("own shutdown")

    tracker.fail_creates = 1
    app = Starlette(lifespan=task_manager_lifespan(make_config(tracker), lifespan=own))
    with pytest.raises(RuntimeError, match="uvicorn failed to start"):
        async with serve_asgi(app, log_level="critical"):
            pytest.fail("the server started")
    assert notes.events == ["own shutdown"]
    assert tracker.alive == 0


async def test_stop_timeout_kills_what_is_left_at_shutdown(tracker: Tracker) -> None:
    """stop_timeout=0: at shutdown a task still running is killed, not waited for."""
    gate = asyncio.Event()
    submitted: list[asyncio.Future[int]] = []

    async def background(request: Request) -> Response:
        manager = await get_task_manager(request)
        submitted.append(manager.submit(use(1, gate=gate)))
        return Response(status_code=202)

    config = make_config(tracker)
    lifespan = task_manager_lifespan(config, stop_timeout=0)
    app = Starlette(routes=[Route("/background", background, methods=["POST"])], lifespan=lifespan)
    async with serve_asgi(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.post("/background")).status_code == 202
        await server.shutdown()
    with pytest.raises(ManagerStoppedError, match="killed"):
        await submitted[0]
    tracker.assert_balanced()


async def test_two_managers_each_under_its_own_name(tracker: Tracker) -> None:
    """Two lifespans composed, two names: each dependency finds its own manager."""
    other = Tracker()
    inner = task_manager_lifespan(make_config(tracker))
    app = FastAPI(lifespan=task_manager_lifespan(make_config(other), name="other", lifespan=inner))

    @app.get("/")
    async def both(manager: Manager, other_manager: Other) -> list[int]:
        return [
            await manager.queue_task(lambda resource: use(resource.ident)(resource)),
            await other_manager.queue_task(lambda resource: use(resource.ident)(resource)),
        ]

    async with client_for(app) as client:
        assert manager_of(app) is not manager_of(app, "other")
        assert (await client.get("/")).json() == [0, 0]  # each its own first resource
    tracker.assert_balanced()
    other.assert_balanced()


async def test_a_second_manager_under_the_same_name_is_refused(tracker: Tracker) -> None:
    """run_task_manager refuses a name that already holds a running manager."""
    app = Starlette()
    async with run_task_manager(app, make_config(tracker)) as first:
        with pytest.raises(RuntimeError, match="another name="):
            async with run_task_manager(app, make_config(tracker)):
                pytest.fail("entered")
        assert app.state.task_manager is first
    tracker.assert_balanced()


async def test_dependency_without_a_manager_says_what_to_do() -> None:
    """get_task_manager on an app without the lifespan names the fix."""
    connection = HTTPConnection({"type": "http", "app": Starlette()})
    with pytest.raises(RuntimeError, match=r"app\.state\.task_manager: .*task_manager_lifespan"):
        await get_task_manager(connection)
    with pytest.raises(RuntimeError, match=r"app\.state\.gpu: .*name='gpu'"):
        await task_manager_dependency("gpu")(connection)


# ---------------------------------------------------------- cancel_on_disconnect, served


class Handled:
    """A Starlette app serving one handler on ``/{n}``, noting each request answered 499."""

    def __init__(
        self,
        tracker: Tracker,
        handler: Callable[[Request], Coroutine[Any, Any, Response]],
    ) -> None:
        self.notes = Notes()
        self.arrivals = Arrivals()  # wakes the test when a task is queued
        config = make_config(tracker, collector=self.arrivals)
        self.app = Starlette(
            routes=[Route("/{n:int}", handler, methods=["GET", "POST"])],
            lifespan=task_manager_lifespan(config),
            exception_handlers={ClientDisconnected: self.gone},
        )

    async def gone(self, request: Request, exc: Exception) -> Response:
        self.notes.add(f"gone {request.path_params['n']}")
        return await client_disconnected_handler(request, exc)


@pytest.mark.parametrize("how", ["unread", "read", "streamed", "read by the work"])
async def test_the_body_stays_readable(tracker: Tracker, how: str) -> None:
    """The watcher never takes a body message: the handler reads the body whenever it likes."""

    async def echo(request: Request) -> Response:
        manager = await get_task_manager(request)
        if how == "read":
            await request.body()
        elif how == "streamed":
            chunks = [chunk async for chunk in request.stream()]
            await cancel_on_disconnect(request, manager.queue_task(use(1)))
            return Response(b"".join(chunks))
        if how == "read by the work":

            async def work() -> bytes:
                body = await request.body()
                await manager.queue_task(use(1))
                return body

            return Response(await cancel_on_disconnect(request, work()))
        await cancel_on_disconnect(request, manager.queue_task(use(1)))
        return Response(await request.body())

    app = Handled(tracker, echo).app
    body = b"x" * 100_000  # several ASGI body messages
    async with client_for(app) as client:
        response = await client.post("/1", content=body)
        assert (response.status_code, response.content) == (200, body)
    tracker.assert_balanced()


async def test_disconnect_while_the_body_arrives_queues_nothing(tracker: Tracker) -> None:
    """A client gone halfway through its body: ClientDisconnected, and the task never queued."""
    started = asyncio.Event()

    async def upload(request: Request) -> Response:
        manager = await get_task_manager(request)
        started.set()
        await cancel_on_disconnect(request, manager.queue_task(use(1)))
        return Response()

    handled = Handled(tracker, upload)
    app, notes = handled.app, handled.notes
    async with serve_asgi(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly part")
        await writer.drain()
        async with asyncio.timeout(WAIT):
            await started.wait()
        writer.close()
        await writer.wait_closed()
        await notes.wait_for("gone 1")
        assert handled.arrivals.count == 0  # the coroutine was closed, never queued
    tracker.assert_balanced()


async def test_watchers_never_outlive_the_call(tracker: Tracker) -> None:
    """After an answer, a task's error and a disconnect, no disconnect watcher is left."""
    gate = asyncio.Event()

    async def fail(resource: Resource) -> int:
        raise ValueError("boom")

    async def handler(request: Request) -> Response:
        manager = await get_task_manager(request)
        n = request.path_params["n"]
        try:
            await cancel_on_disconnect(
                request,
                manager.queue_task(fail if n == 2 else use(n, gate=gate if n == 0 else None)),
            )
        except ValueError:
            return Response(status_code=422)
        return Response()

    def watchers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("tasker_aio: watch")]

    handled = Handled(tracker, handler)
    app, notes = handled.app, handled.notes
    async with client_for(app) as client:
        assert (await client.get("/1")).status_code == 200
        assert watchers() == []
        assert (await client.get("/2")).status_code == 422
        assert watchers() == []
        gone = asyncio.create_task(client.get("/0"))
        await handled.arrivals.wait_for(3)
        assert len(watchers()) == 1
        gone.cancel()  # the client closes its connection
        await notes.wait_for("gone 0")
        assert watchers() == []
    tracker.assert_balanced()


async def test_a_handlers_own_timeout_is_not_a_disconnect(tracker: Tracker) -> None:
    """The handler's own timeout cancels the task and stays a TimeoutError, not a 499."""
    gate = asyncio.Event()
    deadlines: list[asyncio.Timeout] = []

    async def handler(request: Request) -> Response:
        manager = await get_task_manager(request)
        try:
            async with asyncio.timeout(None) as deadline:
                deadlines.append(deadline)
                await cancel_on_disconnect(request, manager.queue_task(use(1, gate=gate)))
        except TimeoutError:
            return Response(status_code=504)
        return Response()

    handled = Handled(tracker, handler)
    app, notes = handled.app, handled.notes
    async with client_for(app) as client:
        answer = asyncio.create_task(client.get("/1"))
        manager = manager_of(app)
        await eventually(lambda: manager.stats().running_tasks == 1)
        deadlines[0].reschedule(asyncio.get_running_loop().time())  # expire it now
        assert (await answer).status_code == 504
        assert notes.events == []
        metrics = manager.metrics()
        assert (metrics.total_tasks_completed, metrics.total_tasks_failed) == (0, 1)
    tracker.assert_balanced()


async def test_server_cancelling_the_handler_is_not_a_disconnect(tracker: Tracker) -> None:
    """uvicorn cancelling a handler at shutdown propagates; no 499, the running task stops."""
    gate = asyncio.Event()

    async def handler(request: Request) -> Response:
        manager = await get_task_manager(request)
        await cancel_on_disconnect(request, manager.queue_task(use(1, gate=gate)))
        return Response()

    handled = Handled(tracker, handler)
    app, notes = handled.app, handled.notes
    # timeout_graceful_shutdown=0: uvicorn cancels the handlers still running at shutdown.
    async with (
        serve_asgi(app, timeout_graceful_shutdown=0, log_level="critical") as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client,
    ):
        answer = asyncio.create_task(client.get("/1"))
        manager = manager_of(app)
        await eventually(lambda: manager.stats().running_tasks == 1)
        await server.shutdown()
        assert (await answer).status_code == 500  # uvicorn's answer to a cancelled handler
    assert notes.events == []
    assert manager.state == "stopped"
    assert manager.metrics().total_tasks_failed == 1
    tracker.assert_balanced()


# -------------------------------------------------- cancel_on_disconnect, hand-built


def hand_built(receive: Callable[[], Coroutine[Any, Any, Message]]) -> Request:
    """A GET request whose empty body comes first, then whatever ``receive`` returns."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/hand-built",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "headers": [],
        "query_string": b"",
        "root_path": "",
    }
    body_sent = False

    async def receive_after_body() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return Request(scope, receive_after_body)


@pytest.mark.parametrize("order", ["own cancel first", "disconnect first"])
async def test_own_cancellation_wins_over_a_simultaneous_disconnect(order: str) -> None:
    """Cancelled and disconnected in the same loop turn: CancelledError, never swallowed."""
    work: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    watching = asyncio.Event()
    disconnect = asyncio.Event()
    handler: asyncio.Task[int] | None = None

    async def receive() -> Message:
        watching.set()
        await disconnect.wait()
        assert handler is not None
        if order == "own cancel first":
            handler.cancel()
        else:  # runs in the next turn, before the handler wakes up
            asyncio.get_running_loop().call_soon(handler.cancel)
        return {"type": "http.disconnect"}

    handler = asyncio.create_task(cancel_on_disconnect(hand_built(receive), work))
    async with asyncio.timeout(WAIT):
        await watching.wait()
    disconnect.set()
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert work.cancelled()


async def test_an_answer_in_the_disconnect_turn_leaves_no_cancel_pending() -> None:
    """Work done in the very turn the client goes: either outcome, but no stray cancel after."""
    work: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def receive() -> Message:
        work.set_result(3)
        return {"type": "http.disconnect"}

    async def handler() -> str:
        try:
            outcome = str(await cancel_on_disconnect(hand_built(receive), work))
        except ClientDisconnected:
            outcome = "disconnected"
        await asyncio.sleep(0)  # a stray cancel would land here
        current = asyncio.current_task()
        assert current is not None
        assert current.cancelling() == 0
        return outcome

    assert await handler() in ("3", "disconnected")


async def test_disconnect_cancels_a_future() -> None:
    """A future given as the work is cancelled on disconnect; ClientDisconnected is raised."""
    work: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    with pytest.raises(ClientDisconnected, match="GET /hand-built"):
        await cancel_on_disconnect(hand_built(receive), work)
    assert work.cancelled()


async def test_the_works_error_propagates_unchanged() -> None:
    """An exception from the work reaches the handler as it is."""
    never = asyncio.Event()

    async def receive() -> Message:
        await never.wait()
        return {"type": "http.disconnect"}

    async def work() -> int:
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await cancel_on_disconnect(hand_built(receive), work())


async def test_a_failing_receive_stops_watching_not_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """receive() raising: a warning is logged and the work still completes."""

    async def receive() -> Message:
        raise OSError("transport gone odd")

    async def work() -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return 5

    with caplog.at_level(logging.WARNING, logger="tasker_aio"):
        assert await cancel_on_disconnect(hand_built(receive), work()) == 5
    assert "transport gone odd" in caplog.text


async def test_the_499_handler() -> None:
    """client_disconnected_handler answers 499 with an empty body."""
    request = hand_built(lambda: asyncio.sleep(0, {"type": "http.disconnect"}))
    response = await client_disconnected_handler(request, ClientDisconnected())
    assert (response.status_code, response.body) == (499, b"")
