"""tasker_aio.aiohttp: setup_task_manager on cleanup_ctx, and get_task_manager.

Apps are served by ``web.AppRunner`` on 127.0.0.1 (see ``tests/served.py``) and called
with an aiohttp client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("aiohttp")

import aiohttp
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from tasker_aio import Config, ManagerStoppedError, TaskManager
from tasker_aio.aiohttp import TASK_MANAGER, get_task_manager, setup_task_manager

from .helpers import Resource, Tracker, use
from .served import WAIT, serve_aiohttp

pytestmark = pytest.mark.web

MANAGER = web.AppKey("manager", TaskManager[Resource, int])
WORKERS = web.AppKey("workers", int)


def make_config(tracker: Tracker, **overrides: Any) -> Config[Resource]:
    settings: dict[str, Any] = {
        "on_create": tracker.create,
        "on_destroy": tracker.destroy,
        "worker_count": 1,
        "resource_pool_size": 0,
        "burst_interval": None,
        **overrides,
    }
    return Config(**settings)


async def ident(request: web.Request) -> web.Response:
    """The id of the resource a task ran on, through the manager at the default key."""
    manager = get_task_manager(request)
    return web.json_response(await manager.queue_task(lambda r: use(r.ident)(r)))


async def test_setup_runs_a_manager_for_the_apps_lifetime(tracker: Tracker) -> None:
    """The manager runs while the app serves; cleanup stops it and destroys every resource."""
    app = web.Application()
    setup_task_manager(app, make_config(tracker, worker_count=2, resource_pool_size=1))
    app.router.add_get("/ident", ident)
    async with (
        serve_aiohttp(app) as server,
        aiohttp.ClientSession(server.url) as session,
    ):
        manager = app[TASK_MANAGER]
        assert manager.state == "running"
        assert tracker.alive == 3  # two workers and one pooled resource
        async with session.get("/ident") as response:
            assert response.status == 200
            assert await response.json() in [resource.ident for resource in tracker.created]
        await server.shutdown()
    assert manager.state == "stopped"
    assert tracker.alive == 0
    tracker.assert_balanced()


async def test_config_factory_runs_inside_earlier_contexts(tracker: Tracker) -> None:
    """A config function sees what earlier cleanup_ctx entries set up; they stop after it."""
    events: list[str] = []

    async def workers(app: web.Application) -> AsyncIterator[None]:
        events.append("workers set")
        app[WORKERS] = 2
        yield
        events.append(f"workers cleanup, manager {app[MANAGER].state}")

    def config_for(app: web.Application) -> Config[Resource]:
        events.append("config built")
        return make_config(tracker, worker_count=app[WORKERS])

    app = web.Application()
    app.cleanup_ctx.append(workers)
    setup_task_manager(app, config_for, key=MANAGER)
    async with serve_aiohttp(app):
        assert app[MANAGER].stats().base_workers == 2
    assert events == ["workers set", "config built", "workers cleanup, manager stopped"]
    tracker.assert_balanced()


async def test_a_sub_app_finds_its_parents_manager(tracker: Tracker) -> None:
    """get_task_manager with a typed key works from a handler of a sub-application."""

    async def double(request: web.Request) -> web.Response:
        manager = get_task_manager(request, MANAGER)
        return web.json_response(await manager.queue_task(use(21)) * 2)

    app = web.Application()
    setup_task_manager(app, make_config(tracker), key=MANAGER)
    api = web.Application()
    api.router.add_get("/double", double)
    app.add_subapp("/api", api)
    async with (
        serve_aiohttp(app) as server,
        aiohttp.ClientSession(server.url) as session,
        session.get("/api/double") as response,
    ):
        assert (response.status, await response.json()) == (200, 42)
    tracker.assert_balanced()


async def test_stop_timeout_kills_what_is_left_at_cleanup(tracker: Tracker) -> None:
    """stop_timeout=0: at cleanup a task still running is killed, not waited for."""
    gate = asyncio.Event()
    submitted: list[asyncio.Future[int]] = []

    async def background(request: web.Request) -> web.Response:
        submitted.append(get_task_manager(request).submit(use(1, gate=gate)))
        return web.Response(status=202)

    app = web.Application()
    setup_task_manager(app, make_config(tracker), stop_timeout=0)
    app.router.add_post("/background", background)
    async with (
        serve_aiohttp(app) as server,
        aiohttp.ClientSession(server.url) as session,
    ):
        async with session.post("/background") as response:
            assert response.status == 202
        await server.shutdown()
    with pytest.raises(ManagerStoppedError, match="killed"):
        await submitted[0]
    tracker.assert_balanced()


async def test_client_gone_cancels_its_running_task(tracker: Tracker) -> None:
    """With handler_cancellation=True a client that leaves cancels its running task."""
    gate = asyncio.Event()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def held(resource: Resource) -> int:
        started.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(await get_task_manager(request).queue_task(held))

    app = web.Application()
    setup_task_manager(app, make_config(tracker))
    app.router.add_get("/held", handler)
    async with (
        serve_aiohttp(app, handler_cancellation=True) as server,
        aiohttp.ClientSession(server.url) as session,
    ):
        request = asyncio.create_task(session.get("/held"))
        async with asyncio.timeout(WAIT):
            await started.wait()
        request.cancel()  # the client closes its connection
        await asyncio.wait([request])
        async with asyncio.timeout(WAIT):
            await cancelled.wait()
        assert app[TASK_MANAGER].metrics().total_tasks_failed == 1
    tracker.assert_balanced()


def test_getter_without_setup_says_what_to_do() -> None:
    """get_task_manager on an app without setup_task_manager names the fix."""
    request = make_mocked_request("GET", "/", app=web.Application())
    with pytest.raises(RuntimeError, match=r"TASK_MANAGER.*call setup_task_manager"):
        get_task_manager(request)
    with pytest.raises(RuntimeError, match=r"manager.*call setup_task_manager"):
        get_task_manager(request, MANAGER)
