"""Run a TaskManager in a FastAPI or Starlette app, and stop work whose client left.

Needs only Starlette (FastAPI is built on it): ``pip install -e ".[fastapi]"`` from a
checkout. Three parts:

- :func:`task_manager_lifespan` runs a manager for the app's lifetime and puts it on
  ``app.state.task_manager``; pass it as ``FastAPI(lifespan=...)`` or
  ``Starlette(lifespan=...)``, optionally wrapped around the app's own lifespan.
  :func:`run_task_manager` is the same as an ``async with`` for use inside your lifespan.
- :func:`get_task_manager` hands the manager to handlers, as a FastAPI dependency or
  called directly. With FastAPI, give it your types once in an ``Annotated`` alias
  (checks under ``mypy --strict``)::

      Manager = Annotated[TaskManager[Model, Prediction], Depends(get_task_manager)]

      @app.get("/predict/{n}")
      async def predict(request: Request, manager: Manager, n: int) -> Prediction:
          return await cancel_on_disconnect(request, manager.queue_task(...))

- :func:`cancel_on_disconnect` awaits a task and cancels it if the client disconnects
  first, raising :class:`ClientDisconnected`; register
  :func:`client_disconnected_handler` to answer those with status 499. Uvicorn (and
  Starlette) never cancel a handler whose client went away: without this, a request that
  timed out on the client side still occupies a worker until its task is done.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, overload

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive

# Only the public API: these helpers sit on top of the engine, not inside it.
from . import Config, TaskerError, TaskManager

__all__ = [
    "DEFAULT_NAME",
    "ClientDisconnected",
    "cancel_on_disconnect",
    "client_disconnected_handler",
    "get_task_manager",
    "run_task_manager",
    "task_manager_dependency",
    "task_manager_lifespan",
]

DEFAULT_NAME = "task_manager"
"""The ``app.state`` attribute the manager is kept under unless told otherwise."""

AppT = TypeVar("AppT", bound=Starlette)
R = TypeVar("R")  # the resource a worker holds
T = TypeVar("T")
_State = Mapping[str, Any]

_logger = logging.getLogger("tasker_aio")
_DISCONNECTED = "tasker_aio: the client disconnected"


class ClientDisconnected(TaskerError):
    """The client disconnected before the answer was ready; its task was cancelled.

    Raised by :func:`cancel_on_disconnect`. A task still queued was discarded (it never
    runs); a running one was cancelled.
    """


# ------------------------------------------------------------------------- lifespan


@asynccontextmanager
async def run_task_manager(
    app: Starlette,
    config: Config[R],
    *,
    name: str = DEFAULT_NAME,
    stop_timeout: float | None = None,
) -> AsyncIterator[TaskManager[R, Any]]:
    """Run a manager and keep it on ``app.state.<name>`` for the duration of the block.

    For use inside an app's own lifespan when the app needs the manager at startup::

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with run_task_manager(app, config) as manager:
                await manager.queue_task(warm_up)
                yield

    The manager starts (every base worker holds its resource) before the block runs. On
    leaving normally it stops gracefully (queued and running tasks finish, then every
    resource is destroyed); on an exception or cancellation it is killed.

    Args:
        app: the Starlette or FastAPI app whose ``state`` receives the manager.
        config: the manager's configuration.
        name: the ``app.state`` attribute to use; give each manager of an app its own.
        stop_timeout: seconds the graceful stop may take before it escalates to
            ``kill()``; None waits for every task.

    Yields:
        The running manager.

    Raises:
        RuntimeError: ``app.state.<name>`` already holds a manager that has not stopped.
        ResourceCreationError: an ``on_create`` failed while starting.
    """
    current = getattr(app.state, name, None)
    if isinstance(current, TaskManager) and current.state in ("running", "stopping"):
        raise RuntimeError(
            f"app.state.{name} already holds a running TaskManager; "
            f"give the second one another name= than {name!r}"
        )
    manager: TaskManager[R, Any] = TaskManager(config)
    async with manager:
        setattr(app.state, name, manager)
        yield manager
        # Only on a normal exit: `async with` kills the manager on an exception.
        await manager.stop(timeout=stop_timeout)


@overload
def task_manager_lifespan(
    config: Config[Any] | Callable[[Starlette], Config[Any]],
    *,
    lifespan: None = None,
    name: str = DEFAULT_NAME,
    stop_timeout: float | None = None,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]: ...


@overload
def task_manager_lifespan(
    config: Config[Any] | Callable[[AppT], Config[Any]],
    *,
    lifespan: Callable[[AppT], AbstractAsyncContextManager[None]],
    name: str = DEFAULT_NAME,
    stop_timeout: float | None = None,
) -> Callable[[AppT], AbstractAsyncContextManager[None]]: ...


@overload
def task_manager_lifespan(
    config: Config[Any] | Callable[[AppT], Config[Any]],
    *,
    lifespan: Callable[[AppT], AbstractAsyncContextManager[_State]],
    name: str = DEFAULT_NAME,
    stop_timeout: float | None = None,
) -> Callable[[AppT], AbstractAsyncContextManager[_State]]: ...


def task_manager_lifespan(
    config: Config[Any] | Callable[[Any], Config[Any]],
    *,
    lifespan: Callable[[Any], AbstractAsyncContextManager[_State | None]] | None = None,
    name: str = DEFAULT_NAME,
    stop_timeout: float | None = None,
) -> Callable[[Any], AbstractAsyncContextManager[_State | None]]:
    """A lifespan that runs a TaskManager for the app, around the app's own lifespan.

    Use it as is, ``FastAPI(lifespan=task_manager_lifespan(config))``, or wrap your
    lifespan: ``task_manager_lifespan(make_config, lifespan=my_lifespan)``. Startup
    runs your lifespan's startup first, then builds the config (``make_config(app)``,
    so ``on_create`` can use what your lifespan set up, such as a database engine) and
    starts the manager; shutdown stops the manager first (gracefully: queued and running
    tasks finish, then every resource is destroyed), then runs your lifespan's shutdown.
    Whatever state your lifespan yields is passed on. To use the manager during your
    own startup instead, enter :func:`run_task_manager` inside your lifespan.

    The server shuts the lifespan down after the requests in progress have finished
    (uvicorn waits up to ``timeout_graceful_shutdown``), so the manager outlives them.

    Args:
        config: the manager's configuration, or a function of the app returning it.
        lifespan: the app's own lifespan, to run around the manager.
        name: the ``app.state`` attribute that receives the manager.
        stop_timeout: seconds the graceful stop may take before it escalates to
            ``kill()``; None waits for every task.

    Returns:
        A lifespan: a function of the app returning an async context manager.
    """

    @asynccontextmanager
    async def manager_lifespan(app: Any) -> AsyncIterator[_State | None]:
        async with AsyncExitStack() as stack:
            state = None if lifespan is None else await stack.enter_async_context(lifespan(app))
            await stack.enter_async_context(
                run_task_manager(app, _resolve(config, app), name=name, stop_timeout=stop_timeout)
            )
            yield state

    return manager_lifespan


def _resolve(config: Config[Any] | Callable[[Any], Config[Any]], app: Any) -> Config[Any]:
    return config if isinstance(config, Config) else config(app)


# ----------------------------------------------------------------------- dependency


async def get_task_manager(connection: HTTPConnection) -> TaskManager[Any, Any]:
    """The app's TaskManager, from ``app.state.task_manager``: a FastAPI dependency.

    Declare its type once with an ``Annotated`` alias (this is what ``mypy --strict``
    sees; the dependency itself returns ``TaskManager[Any, Any]``)::

        Manager = Annotated[TaskManager[Model, Prediction], Depends(get_task_manager)]

    In plain Starlette, call it: ``manager = await get_task_manager(request)``. It is
    ``async`` so that FastAPI calls it on the event loop, not in a worker thread.

    Raises:
        RuntimeError: the app has no manager: its lifespan is not
            :func:`task_manager_lifespan` (or the server runs without lifespan events).
    """
    return _lookup(connection, DEFAULT_NAME)


def task_manager_dependency(
    name: str,
) -> Callable[[HTTPConnection], Awaitable[TaskManager[Any, Any]]]:
    """A dependency like :func:`get_task_manager` for a manager kept under ``name``.

    Args:
        name: the ``name=`` given to :func:`task_manager_lifespan`.

    Returns:
        An async function of the connection returning ``app.state.<name>``.
    """

    async def get_named_task_manager(connection: HTTPConnection) -> TaskManager[Any, Any]:
        return _lookup(connection, name)

    get_named_task_manager.__qualname__ = get_named_task_manager.__name__ = f"get_{name}"
    return get_named_task_manager


def _lookup(connection: HTTPConnection, name: str) -> TaskManager[Any, Any]:
    manager = getattr(connection.app.state, name, None)
    if not isinstance(manager, TaskManager):
        raise RuntimeError(
            f"no TaskManager at app.state.{name}: serve the app with "
            f"lifespan=task_manager_lifespan(..., name={name!r}) and lifespan events on"
        )
    return manager


# ------------------------------------------------------------ client disconnection


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it.

    ``work`` is typically ``manager.queue_task(fn)`` (or any of its forms): cancelling
    it discards the task if it is still queued, or cancels it if it is running::

        return await cancel_on_disconnect(request, manager.queue_task(fn))

    How: the request body is read first (and cached, so ``request.body()``,
    ``.json()`` and ``.form()`` still work afterwards), because after the body the only
    message the ASGI server can send is ``http.disconnect``; then one watcher task waits
    for that message while ``work`` runs, and is cancelled and awaited before this
    returns, whatever happens. Read or stream the body yourself before calling this if
    you need it unbuffered; a handler must not read ``request.receive`` concurrently.

    Cancellation of the handler itself (a timeout around this call, server shutdown) is
    not turned into :class:`ClientDisconnected`: it propagates as ``CancelledError``
    (and cancels ``work`` just the same).

    Args:
        request: the request whose client is watched.
        work: what to await: a coroutine, a future or any awaitable. If this raises
            before awaiting it, a coroutine is closed and a future cancelled.

    Returns:
        What ``work`` returned; its exceptions propagate unchanged.

    Raises:
        ClientDisconnected: the client disconnected before ``work`` finished, and
            ``work`` was cancelled.
    """
    handler = asyncio.current_task()
    try:
        if handler is None:
            raise RuntimeError("cancel_on_disconnect must be awaited in an asyncio task")
        await _read_body(request)
    except BaseException:
        _abandon(work)
        raise
    watch = _Watch(handler)
    watcher = asyncio.get_running_loop().create_task(
        watch.run(request.receive),
        name=f"tasker_aio: watch {request.method} {request.url.path} for disconnect",
    )
    try:
        return await work
    except asyncio.CancelledError:
        # Ours only if no other cancel is pending on the handler: uncancel() counts them,
        # so a timeout or a server cancelling the handler always propagates, even when it
        # lands in the same loop turn as the disconnect.
        if watch.cancelled and handler.uncancel() <= watch.cancelling_at_start:
            raise _disconnected(request) from None
        raise
    finally:
        watcher.cancel()
        # Awaited, so no task outlives the call and no one else is left in receive().
        if not watcher.done():
            with anyio.CancelScope(shield=True):
                await asyncio.wait([watcher])


async def _read_body(request: Request) -> None:
    try:
        await request.body()
    except ClientDisconnect as exc:  # gone while sending the body
        raise _disconnected(request) from exc
    except RuntimeError as exc:
        # Someone already streamed the body to its end (request.form() does): nothing
        # is left to take from receive() but the disconnect.
        if "consumed" not in str(exc):
            raise


def _disconnected(request: Request) -> ClientDisconnected:
    return ClientDisconnected(f"client of {request.method} {request.url.path} disconnected")


class _Watch:
    """One disconnect watch: cancels the handler on ``http.disconnect`` while it waits."""

    def __init__(self, handler: asyncio.Task[Any]) -> None:
        self.handler = handler
        self.cancelling_at_start = handler.cancelling()
        self.cancelled = False

    async def run(self, receive: Receive) -> None:
        try:
            message = await receive()
        except Exception as exc:  # a server-specific failure: stop watching, keep serving
            _logger.warning("cannot watch for client disconnect: receive() raised %r", exc)
            return
        if message["type"] != "http.disconnect":  # not ASGI after a complete body
            _logger.warning("cannot watch for client disconnect: received %r", message["type"])
        else:  # the handler still awaits `work`: it cancels this task before resuming
            self.cancelled = True
            self.handler.cancel(_DISCONNECTED)


def _abandon(work: Awaitable[Any]) -> None:
    if inspect.iscoroutine(work):
        work.close()  # never started: closing it does not warn "never awaited"
    elif isinstance(work, asyncio.Future):
        work.cancel()


async def client_disconnected_handler(request: Request, exc: Exception) -> Response:
    """Answer :class:`ClientDisconnected` with status 499 ("client closed request").

    Nobody reads the answer; it is what the server's access log shows. Register it with
    ``app.add_exception_handler(ClientDisconnected, client_disconnected_handler)`` or
    ``FastAPI(exception_handlers={ClientDisconnected: client_disconnected_handler})``.
    """
    return Response(status_code=499)
