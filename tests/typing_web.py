"""Type-checked only (mypy --strict, never run): what the web helpers give a type checker.

Pins the documented recipes: the ``Annotated`` dependency alias for FastAPI, lifespans
accepted by ``FastAPI(lifespan=...)`` and ``Starlette(lifespan=...)`` in every
composition, and typed managers through aiohttp ``AppKey``s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, assert_type

from aiohttp import web
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette

from tasker_aio import Config, TaskManager
from tasker_aio import aiohttp as tasker_aiohttp
from tasker_aio import fastapi as tasker_fastapi


class Conn:
    async def count(self) -> int:
        return 1


async def connect() -> Conn:
    return Conn()


async def close(conn: Conn) -> None: ...


config = Config(on_create=connect, on_destroy=close, worker_count=1)


@asynccontextmanager
async def stateless(app: FastAPI) -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def stateful(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"answer": 42}


def config_for(app: FastAPI) -> Config[Conn]:
    return config


# Every composition is a lifespan both frameworks accept, also through a variable.
lifespan = tasker_fastapi.task_manager_lifespan(config)
FastAPI(lifespan=lifespan)
Starlette(lifespan=lifespan)
Starlette(lifespan=tasker_fastapi.task_manager_lifespan(lambda app: config))
FastAPI(lifespan=tasker_fastapi.task_manager_lifespan(config, lifespan=stateless))
FastAPI(lifespan=tasker_fastapi.task_manager_lifespan(config_for, lifespan=stateless))
stateful_lifespan = tasker_fastapi.task_manager_lifespan(config, lifespan=stateful, name="other")
FastAPI(lifespan=stateful_lifespan)
FastAPI(
    exception_handlers={
        tasker_fastapi.ClientDisconnected: tasker_fastapi.client_disconnected_handler
    }
)

# The recipe: state the manager's types once; handlers see them.
Manager = Annotated[TaskManager[Conn, int], Depends(tasker_fastapi.get_task_manager)]
Other = Annotated[TaskManager[Conn, int], Depends(tasker_fastapi.task_manager_dependency("other"))]


async def fastapi_handler(request: Request, manager: Manager, other: Other) -> int:
    assert_type(manager, TaskManager[Conn, int])
    result = await tasker_fastapi.cancel_on_disconnect(request, manager.queue_task(Conn.count))
    assert_type(result, int)
    future = manager.queue_task_async(Conn.count)
    assert_type(await tasker_fastapi.cancel_on_disconnect(request, future), int)
    assert_type(await tasker_fastapi.get_task_manager(request), TaskManager[Any, Any])
    return result


async def warm_up(app: Starlette) -> None:
    async with tasker_fastapi.run_task_manager(app, config) as manager:
        assert_type(manager, TaskManager[Conn, Any])


# aiohttp: a typed key gives a typed manager; the default key an untyped one.
MANAGER = web.AppKey("manager", TaskManager[Conn, int])
app = web.Application()
tasker_aiohttp.setup_task_manager(app, config, key=MANAGER)
tasker_aiohttp.setup_task_manager(app, lambda app: config, stop_timeout=5.0)
assert_type(tasker_aiohttp.TASK_MANAGER, web.AppKey[TaskManager[Any, Any]])


async def aiohttp_handler(request: web.Request) -> web.Response:
    manager = tasker_aiohttp.get_task_manager(request, MANAGER)
    assert_type(manager, TaskManager[Conn, int])
    assert_type(tasker_aiohttp.get_task_manager(request), TaskManager[Any, Any])
    return web.json_response(await manager.queue_task(Conn.count))
