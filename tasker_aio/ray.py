"""Ray actors as tasker_aio resources: each worker holds one actor, anywhere in a cluster.

Install with ``pip install "tasker-aio[ray]"``. This module is the only part of
tasker_aio that imports Ray; ``import tasker_aio`` never does.

:func:`actor_config` builds a :class:`~tasker_aio.Config` whose resources are actors of
a plain class. A task receives an :class:`ActorProxy` and awaits the actor's methods on
it, so the same scheduler, priority queue, health checks, retries, bursting,
``stop``/``kill`` and metrics drive actors exactly as they drive local resources::

    config = actor_config(Model, args=("weights.bin",), actor_options={"num_gpus": 1},
                          worker_count=2)
    async with TaskManager[ActorProxy, Prediction](config) as manager:
        prediction = await manager.queue_task(lambda model: model.predict(7))

The manager never calls ``ray.init``: connect first (``ray.init()`` for a local
cluster, ``ray.init(address=...)`` for a real one).

How the parts map onto Ray 2.60:

- **A call** is ``handle.method.remote(...)`` awaited as an ``ObjectRef``. An exception
  raised in the actor arrives as Ray's ``RayTaskError(ValueError)`` hybrid; the proxy
  raises the original ``ValueError`` instead, with Ray's rendering of the remote
  traceback added to its ``__notes__``.
- **Cancellation.** Cancelling the awaiting caller does not stop the remote call by
  itself, so the proxy calls ``ray.cancel(ref)``. For an ``async def`` method Ray
  cancels the method's ``asyncio.Task`` (it sees ``CancelledError``); a call still queued
  in the actor is dropped; but a *running* sync method only gets a flag that it may poll
  with ``ray.get_runtime_context().is_canceled()``: it runs on. The proxy therefore waits
  ``cancel_timeout`` seconds for the call to settle and, if it has not, kills the actor,
  so a call that would not stop never shares the actor with the next task (the worker
  replaces the actor at once). The cancel is Ray's default, recursive: calls the method
  made are cancelled too, and so, racing with it, may be a Ray call that the method's
  own cancellation handler makes (3 of 40 in a test here): keep such cleanup local.
- **Dead or frozen.** A call on a dead actor (process killed, node removed) fails fast
  with ``ActorDiedError``, and ``ActorUnavailableError`` marks an actor Ray cannot reach;
  both, and the other actor-loss errors (:data:`ACTOR_FAILURES`), are unhealthy. A frozen
  actor (a method blocking forever, or an async actor whose event loop is blocked)
  raises nothing: only a timeout tells. The ping is that timeout: a no-op function run
  in the actor through Ray's ``__ray_call__``, so it waits exactly where a task would
  (behind a blocked event loop, or behind the one thread of a sync actor). Ray's own
  ``__ray_ready__`` will not do: an async actor answers it even while its event loop
  is blocked. The ping is installed as ``check_resource``, so idle actors that died or
  froze are replaced before a task lands on them (``check_idle_after``,
  ``check_interval``).
- **Creation** waits for ``__ray_ready__`` (the constructor has run) at most
  ``create_timeout`` seconds. An actor that cannot be placed (no node offers its
  ``num_cpus``/``num_gpus``/``resources``) stays pending in Ray forever, so the timeout
  is what turns it into a failed ``on_create``; the pending actor is killed so that it
  is not placed later behind the manager's back.
- **Destruction** calls the actor's ``close()`` if its class defines one (at most
  ``close_timeout`` seconds) and then ``ray.kill``\\ s it. An actor known to be lost
  (dead, unreachable, unresponsive or killed by the proxy) gets no ``close()``: nothing
  waits on a process that is gone.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import anyio
import ray
from ray import exceptions as ray_errors
from ray.actor import ActorClass, ActorHandle

from . import Config, ConfigError

__all__ = [
    "ACTOR_FAILURES",
    "ActorProxy",
    "actor_config",
    "is_actor_failure",
    "ping",
]

_logger = logging.getLogger("tasker_aio.ray")

#: Errors meaning "this actor is dead or cannot be reached": its resource is broken.
ACTOR_FAILURES: tuple[type[BaseException], ...] = (
    ray_errors.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray_errors.WorkerCrashedError,
    ray_errors.LocalRayletDiedError,
    ray_errors.NodeDiedError,
    ray_errors.ActorUnschedulableError,
    ray_errors.ActorPlacementGroupRemoved,
)

# Cancellations after which the proxy had to kill its actor (the remote call would not
# stop): check_health sees the CancelledError itself, and replaces the worker at once.
_killed_by_cancel: weakref.WeakSet[BaseException] = weakref.WeakSet()

# Proxies whose actor is dead, unreachable, frozen or killed here: nothing waits on them
# again (no close(), no ping). Kept beside the proxy rather than on it, so that the
# proxy's attribute namespace stays the actor's methods.
_lost: weakref.WeakSet[ActorProxy] = weakref.WeakSet()


def is_actor_failure(exc: BaseException) -> bool:
    """True when ``exc`` says the actor itself is lost, not that its method failed.

    An actor-loss error that a method raised *inside* the actor (say, from a call to a
    second actor that died) arrives wrapped in ``RayTaskError``: that actor is fine.
    """
    if exc in _killed_by_cancel:
        return True
    return isinstance(exc, ACTOR_FAILURES) and not isinstance(exc, ray_errors.RayTaskError)


def _original(error: ray_errors.RayTaskError) -> BaseException:
    """The exception the actor raised, carrying the remote traceback in its notes."""
    cause = error.cause
    # Ray's own errors (a failed nested call, a cancellation) stay wrapped: unwrapping
    # them would make an error from inside the actor look like one about the actor.
    if not isinstance(cause, BaseException) or isinstance(cause, ray_errors.RayError):
        return error
    cause.add_note(f"Raised in a Ray actor:\n{error}")
    return cause


def _retrieve(future: asyncio.Future[Any]) -> BaseException | None:
    """The exception of a finished future, marking it retrieved (no 'never retrieved')."""
    if future.cancelled():
        return None
    return future.exception()


def _pong_by_value() -> Callable[[object], bool]:
    def pong(actor: object) -> bool:
        return True

    return pong


# A local function, so cloudpickle sends it by value: the actor's node needs no tasker_aio.
_PONG = _pong_by_value()


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class ActorProxy:
    """One Ray actor as a task sees it: ``await proxy.method(*args, **kwargs)``.

    The call runs ``method`` (sync or ``async def``) in the actor and returns its value.
    An exception the method raised arrives as its original type, the remote traceback in
    its ``__notes__``; actor-loss errors (:data:`ACTOR_FAILURES`) arrive as Ray raises
    them. Cancelling the awaiting caller cancels the remote call (``ray.cancel``) and
    waits up to ``cancel_timeout`` seconds for it to settle; a call still running after
    that gets its actor killed, since the actor cannot be handed to the next task.

    Attributes:
        handle: the raw ``ActorHandle``, for anything the proxy does not offer
            (``proxy.handle.method.options(...).remote()``, passing the actor on).
    """

    __slots__ = ("__weakref__", "_cancel_timeout", "handle")

    def __init__(self, handle: ActorHandle[Any], *, cancel_timeout: float) -> None:
        self.handle = handle
        self._cancel_timeout = cancel_timeout

    def __repr__(self) -> str:
        lost = ", lost" if self in _lost else ""
        return f"<ActorProxy {self.handle!r}{lost}>"  # Actor(Class, id): the id Ray's logs show

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method.startswith("__"):  # keep copy/pickle/inspect probes honest
            raise AttributeError(method)
        return functools.partial(self.call, method)

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` in the actor; the same as ``await proxy.<method>(...)``.

        Use it for a method whose name the proxy itself uses (``handle``, ``call``).

        Raises:
            AttributeError: the actor has no such method.
            BaseException: whatever the method raised, as its original type.
            ray.exceptions.RayActorError: the actor died or cannot be reached (see
                :data:`ACTOR_FAILURES` for the whole family).
        """
        ref = getattr(self.handle, method).remote(*args, **kwargs)
        try:
            return await ref
        except asyncio.CancelledError as cancel:
            await self._cancel(ref, cancel)
            raise
        except ray_errors.RayTaskError as error:
            raise _original(error) from None
        except ACTOR_FAILURES:
            _lost.add(self)
            raise

    async def _cancel(self, ref: ray.ObjectRef[Any], cancel: BaseException) -> None:
        """Cancel the remote call; kill the actor if it has not settled in time."""
        try:
            ray.cancel(ref)
        except Exception as error:  # Ray is gone or refuses: the kill below still bounds it
            _logger.warning("ray.cancel failed for %r: %r", self, error)
        settled = asyncio.wrap_future(ref.future())
        # Shielded: kill() cancels again at once, yet the remote call deserves its
        # moment to run its cancellation handlers (bounded by cancel_timeout).
        with anyio.CancelScope(shield=True):
            await asyncio.wait((settled,), timeout=self._cancel_timeout)
        if settled.done():
            failure = _retrieve(settled)  # nobody else reads it: the caller has gone
            if failure is not None and is_actor_failure(failure):
                _lost.add(self)
            return
        settled.cancel()
        _killed_by_cancel.add(cancel)
        _logger.warning("killing %r: a cancelled call did not stop", self)
        try:
            _kill(self)
        except Exception as error:  # on_destroy kills it again
            _logger.warning("ray.kill failed for %r: %r", self, error)


def _kill(proxy: ActorProxy) -> None:
    """``ray.kill`` the proxy's actor (no restart); from now on it is lost."""
    _lost.add(proxy)
    ray.kill(proxy.handle, no_restart=True)


async def ping(proxy: ActorProxy, within: float) -> bool:
    """True when a no-op call runs in the proxy's actor within ``within`` seconds.

    The call waits where a task would: behind a blocked event loop (async actor) or
    behind the one thread of a sync actor, so a frozen actor fails it, and so does a
    dead one (at once). An actor that failed it is lost: it gets no ``close()`` later.
    This is the ping :func:`actor_config` installs as ``check_resource``.
    """
    if proxy in _lost:
        return False
    ref: ray.ObjectRef[Any] = proxy.handle.__ray_call__.remote(_PONG)
    answer = asyncio.wrap_future(ref.future())
    try:
        await asyncio.wait((answer,), timeout=within)
    finally:
        if not answer.done():  # frozen, or the check was cancelled: drop the ping
            answer.cancel()
            ray.cancel(ref)
    if not answer.done() or answer.cancelled():
        _lost.add(proxy)  # frozen: close() would hang too
        return False
    error = _retrieve(answer)
    if error is not None:
        if is_actor_failure(error):
            _lost.add(proxy)
        return False
    return True


def actor_config(
    actor_class: type[Any],
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    actor_options: Mapping[str, Any] | None = None,
    create_timeout: float = 60.0,
    ping_timeout: float = 5.0,
    close_timeout: float = 10.0,
    cancel_timeout: float = 1.0,
    **config_fields: Any,
) -> Config[ActorProxy]:
    """A :class:`~tasker_aio.Config` whose resources are Ray actors of ``actor_class``.

    Each resource is ``ray.remote(actor_class).options(**actor_options).remote(*args,
    **kwargs)``, wrapped in an :class:`ActorProxy`. Health is built in: actor-loss errors
    (:func:`is_actor_failure`) are unhealthy before ``check_health`` is asked, and a ping
    with ``ping_timeout`` runs before your ``check_resource``, so dead and frozen actors
    are replaced.

    Args:
        actor_class: a plain class (not decorated with ``@ray.remote``); its methods,
            sync or ``async def``, are what tasks call. A ``close()`` method, if any, is
            called before the actor is killed.
        args: positional arguments of the constructor.
        kwargs: keyword arguments of the constructor.
        actor_options: ``ray.remote`` actor options: ``num_cpus``, ``num_gpus``,
            ``resources``, ``scheduling_strategy``, ``runtime_env``, ... Leave
            ``max_restarts`` at 0: tasker_aio replaces a dead actor itself.
        create_timeout: seconds for an actor to be placed and constructed; past it the
            creation fails (and the pending actor is killed).
        ping_timeout: seconds an idle actor has to answer the health ping.
        close_timeout: seconds ``close()`` may take before the actor is killed anyway.
        cancel_timeout: seconds a cancelled call may take to stop before its actor is
            killed.
        **config_fields: every other :class:`~tasker_aio.Config` field (``worker_count``
            is required). ``check_health`` and ``check_resource`` are combined with the
            built-in checks; ``resource_pool_size`` defaults to 0 (an actor per
            ``run_task`` pool slot is rarely worth it).

    Returns:
        The config; build a ``TaskManager[ActorProxy, E]`` from it.

    Raises:
        TypeError: ``actor_class`` is already a Ray actor class, or ``on_create`` or
            ``on_destroy`` was given (actor_config makes them).
        ConfigError: a timeout is not a positive number, or Ray rejects ``actor_options``.
    """
    if isinstance(actor_class, ActorClass) or not inspect.isclass(actor_class):
        raise TypeError(
            f"actor_class must be a plain class (put @ray.remote options in actor_options), "
            f"got {actor_class!r}"
        )
    for field in ("on_create", "on_destroy"):
        if field in config_fields:
            raise TypeError(f"actor_config makes {field}; got {config_fields[field]!r}")
    create_timeout = _positive("create_timeout", create_timeout)
    ping_timeout = _positive("ping_timeout", ping_timeout)
    close_timeout = _positive("close_timeout", close_timeout)
    cancel_timeout = _positive("cancel_timeout", cancel_timeout)
    options = dict(actor_options or {})
    remote_class: ActorClass[Any] = ray.remote(actor_class)
    try:
        remote_class.options(**options)  # Ray validates the options here, no cluster needed
    except (TypeError, ValueError) as error:
        raise ConfigError(f"actor_options rejected by Ray: {options!r}: {error}") from error
    init_args = tuple(args)
    init_kwargs = dict(kwargs or {})
    has_close = callable(getattr(actor_class, "close", None))
    label = actor_class.__qualname__

    async def create() -> ActorProxy:
        handle = cast(
            "ActorHandle[Any]", remote_class.options(**options).remote(*init_args, **init_kwargs)
        )
        proxy = ActorProxy(handle, cancel_timeout=cancel_timeout)
        readiness: ray.ObjectRef[Any] = handle.__ray_ready__.remote()
        ready = asyncio.wrap_future(readiness.future())
        try:
            await asyncio.wait((ready,), timeout=create_timeout)
            if not ready.done():
                raise TimeoutError(
                    f"actor {label} not ready after {create_timeout}s; can the cluster "
                    f"place actor_options={options!r}?"
                )
            ready.result()  # the constructor's failure, as ActorDiedError
        except BaseException:
            ready.cancel()
            _kill(proxy)  # else Ray may still place it later, with nobody to own it
            raise
        return proxy

    async def destroy(proxy: ActorProxy) -> None:
        try:
            if has_close and proxy not in _lost:
                closing: ray.ObjectRef[Any] = proxy.handle.close.remote()
                closed = asyncio.wrap_future(closing.future())
                await asyncio.wait((closed,), timeout=close_timeout)
                if not closed.done():
                    closed.cancel()
                    raise TimeoutError(f"{proxy!r}.close() took over {close_timeout}s")
                error = _retrieve(closed)
                if error is not None and not is_actor_failure(error):
                    raise error  # the engine logs it; an actor already gone is no error here
        finally:
            _kill(proxy)  # a lost actor too: it may merely be frozen

    user_health: Callable[[BaseException], bool] | None = config_fields.pop("check_health", None)

    def check_health(exc: BaseException) -> bool:
        if is_actor_failure(exc):
            return False
        return True if user_health is None else bool(user_health(exc))

    config_fields.setdefault("resource_pool_size", 0)
    user_check = config_fields.pop("check_resource", None)

    async def check_resource(proxy: ActorProxy) -> bool:
        if not await ping(proxy, ping_timeout):
            return False
        if user_check is None:
            return True
        verdict = user_check(proxy)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    return Config(
        on_create=create,
        on_destroy=destroy,
        check_health=check_health,
        check_resource=check_resource,
        **config_fields,
    )
