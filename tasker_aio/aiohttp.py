"""Run a TaskManager in an aiohttp app.

Needs aiohttp >= 3.9: ``pip install -e ".[aiohttp]"`` from a checkout.

- :func:`setup_task_manager` runs a manager on the app's ``cleanup_ctx``: it starts
  before the server takes requests and stops gracefully (queued and running tasks
  finish, then every resource is destroyed) after the requests in progress are done.
  The manager is kept under a typed ``web.AppKey``: :data:`TASK_MANAGER`, or your own.
- :func:`get_task_manager` returns it to a handler (also from a sub-app).

**Serve with** ``handler_cancellation=True`` (``web.run_app(app,
handler_cancellation=True)``, or ``web.AppRunner(app, handler_cancellation=True)``).
Only then does aiohttp cancel the handler of a request whose client disconnected (or
timed out), and so the handler's ``await manager.queue_task(...)``: tasker_aio discards
the task if it is still queued, or cancels it if it is running. aiohttp stopped
cancelling handlers by default in 3.8.2 and made it opt-in with this flag in 3.9;
without it the handler goes on waiting and the abandoned task still runs, taking a
worker from the requests whose clients are still there. A handler that must not be
interrupted halfway (say, one that writes to two places) can protect that part with
``asyncio.shield`` or ``aiojobs``.

Example::

    MANAGER = web.AppKey("manager", TaskManager[Model, Prediction])

    async def predict(request: web.Request) -> web.Response:
        manager = get_task_manager(request, MANAGER)
        return web.json_response(await manager.queue_task(lambda model: model.predict()))

    app = web.Application()
    setup_task_manager(app, config, key=MANAGER)
    app.router.add_get("/predict", predict)
    web.run_app(app, handler_cancellation=True)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar, overload

from aiohttp import web

# Only the public API: these helpers sit on top of the engine, not inside it.
from . import Config, TaskManager

__all__ = ["TASK_MANAGER", "get_task_manager", "setup_task_manager"]

TASK_MANAGER = web.AppKey("TASK_MANAGER", TaskManager[Any, Any])
"""The default key of the manager in the app, when ``setup_task_manager`` is given none."""

R = TypeVar("R")  # the resource a worker holds
ManagerT = TypeVar("ManagerT", bound=TaskManager[Any, Any])


def setup_task_manager(
    app: web.Application,
    config: Config[R] | Callable[[web.Application], Config[R]],
    *,
    key: web.AppKey[TaskManager[R, Any]] = TASK_MANAGER,
    stop_timeout: float | None = None,
) -> None:
    """Run a TaskManager for ``app``'s lifetime on its ``cleanup_ctx``; keep it at ``key``.

    Serve the app with ``handler_cancellation=True`` so that a client that goes away
    cancels its task (see the module docstring).

    Args:
        app: the application; call this before it starts.
        config: the manager's configuration, or a function of the app returning it,
            called at startup after the ``cleanup_ctx`` entries appended before this
            one have started (so ``on_create`` can use what they set up; they are
            stopped after the manager).
        key: where the manager is kept; make your own ``web.AppKey("manager",
            TaskManager[Conn, Result])`` to have handlers see its types.
        stop_timeout: seconds the graceful stop may take before it escalates to
            ``kill()``; None waits for every task.
    """
    app.cleanup_ctx.append(partial(_run_manager, config=config, key=key, stop_timeout=stop_timeout))


async def _run_manager(
    app: web.Application,
    *,
    config: Config[R] | Callable[[web.Application], Config[R]],
    key: web.AppKey[TaskManager[R, Any]],
    stop_timeout: float | None,
) -> AsyncIterator[None]:
    # An async generator rather than a context manager: aiohttp < 3.11 accepts only these.
    manager: TaskManager[R, Any] = TaskManager(
        config if isinstance(config, Config) else config(app)
    )
    async with manager:
        app[key] = manager
        yield
        # Only on a normal exit: `async with` kills the manager on an exception.
        await manager.stop(timeout=stop_timeout)


@overload
def get_task_manager(request: web.Request) -> TaskManager[Any, Any]: ...


@overload
def get_task_manager(request: web.Request, key: web.AppKey[ManagerT]) -> ManagerT: ...


def get_task_manager(
    request: web.Request, key: web.AppKey[Any] = TASK_MANAGER
) -> TaskManager[Any, Any]:
    """The manager :func:`setup_task_manager` runs for the request's app (or a parent app).

    Args:
        request: the request being handled.
        key: the ``key=`` given to :func:`setup_task_manager`; typed keys give typed
            managers.

    Returns:
        The running manager.

    Raises:
        RuntimeError: no manager at ``key``: ``setup_task_manager`` was not called
            with it, or the app has not started.
    """
    try:
        manager: TaskManager[Any, Any] = request.config_dict[key]
    except KeyError:
        raise RuntimeError(
            f"no TaskManager at {key!r}: call setup_task_manager(app, config, key=...) "
            f"before the app starts"
        ) from None
    return manager
