"""Bad input: every public entry point refuses wrong types and values with an error that
names what was wrong, and the manager keeps working afterwards."""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import (
    Config,
    ConfigError,
    MaxRetriesExceededError,
    TaskManager,
    exponential_backoff,
    new_collector,
)

from .helpers import Resource, Tracker, settle, use
from .loops import loop_factories

Make = Callable[..., TaskManager[Any, Any]]

NOT_CALLABLE: list[Any] = [None, 42, "task", object()]
NON_BLOCKING = [
    "submit",
    "queue_task_async",
    "queue_task_with_priority_async",
    "queue_task_once_async",
    "queue_task_with_priority_once_async",
]
WITH_CALLBACK = [
    "queue_task_with_callback",
    "queue_task_with_priority_with_callback",
    "queue_task_once_with_callback",
    "queue_task_with_priority_once_with_callback",
]
AWAITING = [
    "queue_task",
    "queue_task_with_priority",
    "queue_task_once",
    "queue_task_with_priority_once",
    "run_task",
]


def named(message: str, value: object) -> str:
    """A pattern for exactly ``message`` followed by ``repr(value)``."""
    return f"^{re.escape(message)}{re.escape(repr(value))}$"


async def still_works(manager: TaskManager[Any, Any]) -> None:
    """A normal task succeeds through each kind of entry point; nothing is left queued."""
    assert await manager.queue_task(use(1)) == 1
    assert await manager.submit(use(2), priority=True) == 2
    assert await manager.run_task(use(3)) == 3
    assert [v async for v in manager.map(lambda r, i: use(i)(r), [4, 5])] == [4, 5]
    stats = manager.stats()
    assert stats.queued_tasks == stats.priority_tasks == stats.running_tasks == 0


def noop_destroy(resource: object) -> None:
    return None


def build(**overrides: Any) -> TaskManager[Any, Any]:
    settings: dict[str, Any] = {
        "on_create": object,
        "on_destroy": noop_destroy,
        "worker_count": 2,
        "burst_interval": None,
    }
    settings.update(overrides)
    return TaskManager(Config(**settings))


# ------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("worker_count", 0, "^worker count must be positive$"),
        ("worker_count", -3, "^worker count must be positive$"),
        ("worker_count", None, "^worker count must be positive$"),
        ("worker_count", "2", "^worker count must be positive$"),
        ("worker_count", True, "^worker count must be positive$"),
        ("on_create", None, "^on_create function is required$"),
        ("on_create", "connect", "^on_create function is required$"),
        ("on_destroy", None, "^on_destroy function is required$"),
        ("on_destroy", 0, "^on_destroy function is required$"),
        ("max_worker_count", 1, "max_worker_count.*1"),
        ("max_worker_count", -4, "max_worker_count.*-4"),
        ("resource_pool_size", -1, "resource_pool_size.*-1"),
        ("resource_pool_size", 1.5, "resource_pool_size.*1.5"),
        ("max_queue_size", -1, "max_queue_size.*-1"),
        ("max_retries", -1, "max_retries.*-1"),
        ("max_retries", "3", "max_retries.*'3'"),
        ("task_retries", -2, "task_retries.*-2"),
        ("burst_interval", 0, "burst_interval.*0"),
        ("burst_interval", -0.1, r"burst_interval.*-0\.1"),
        ("burst_interval", math.nan, "burst_interval.*nan"),
        ("burst_interval", math.inf, "burst_interval.*inf"),
        ("burst_interval", "0.1", "burst_interval.*'0.1'"),
        ("check_health", "yes", "check_health.*'yes'"),
        ("retry_backoff", 2.0, r"retry_backoff.*2\.0"),
        ("logger", "log", "logger.*'log'"),
        ("collector", 7, "collector.*7"),
    ],
)
def test_bad_config_value_is_named(field: str, value: Any, message: str) -> None:
    """Each bad Config field fails construction with ConfigError naming it; nothing is created."""
    created: list[object] = []

    def create() -> object:
        created.append(object())
        return created[-1]

    overrides: dict[str, Any] = {"on_create": create, field: value}
    with pytest.raises(ConfigError, match=message):
        build(**overrides)
    assert created == []
    assert build(on_create=create).state == "new"  # a valid config still builds


@pytest.mark.parametrize("config", [None, {"worker_count": 1}, "config"])
def test_config_must_be_a_config(config: Any) -> None:
    """TaskManager(x) with x not a Config says so, naming x."""
    with pytest.raises(ConfigError, match=r"config must be a tasker_aio\.Config, got"):
        TaskManager(config)


def test_coroutine_object_as_factory_is_refused() -> None:
    """A coroutine object (a called factory) is not a factory: on_create is required."""

    async def connect() -> object:
        return object()

    called = connect()
    try:
        with pytest.raises(ConfigError, match="^on_create function is required$"):
            build(on_create=called)
    finally:
        called.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1}, "initial.*-1"),
        ({"initial": math.nan}, "initial.*nan"),
        ({"maximum": math.inf}, "maximum.*inf"),
        ({"multiplier": 0.5}, r"multiplier.*0\.5"),
        ({"multiplier": "2"}, "multiplier.*'2'"),
    ],
)
def test_bad_backoff_parameters_are_named(kwargs: dict[str, Any], message: str) -> None:
    """exponential_backoff() refuses a bad parameter with ConfigError naming it."""
    with pytest.raises(ConfigError, match=message):
        exponential_backoff(**kwargs)
    assert exponential_backoff(jitter=False)(1) == pytest.approx(0.1)


@pytest.mark.parametrize("window", [0, -1, math.nan, math.inf, "10", True])
def test_bad_collector_window_is_named(window: Any) -> None:
    """new_collector(window=...) refuses a non-positive or non-numeric window, naming it."""
    with pytest.raises(ConfigError, match=f"window.*{re.escape(repr(window))}"):
        new_collector(window=window)


# ------------------------------------------------------------------ submissions


@pytest.mark.parametrize("bad", NOT_CALLABLE, ids=repr)
@pytest.mark.parametrize("method", NON_BLOCKING + WITH_CALLBACK)
async def test_non_callable_task_refused_by_non_blocking_forms(
    make_manager: Make, method: str, bad: Any
) -> None:
    """A non-blocking method given a non-callable fn raises TypeError at once, naming it."""
    async with make_manager() as manager:
        args: tuple[Any, ...] = (bad, lambda r, e: None) if "callback" in method else (bad,)
        with pytest.raises(TypeError, match=named("fn must be callable, got ", bad)):
            getattr(manager, method)(*args)
        assert manager.metrics().total_tasks_arrived == 0
        await still_works(manager)


@pytest.mark.parametrize("bad", NOT_CALLABLE, ids=repr)
@pytest.mark.parametrize("method", AWAITING)
async def test_non_callable_task_refused_by_awaiting_forms(
    make_manager: Make, method: str, bad: Any
) -> None:
    """An awaiting method (and run_task) given a non-callable fn raises TypeError naming it."""
    async with make_manager() as manager:
        with pytest.raises(TypeError, match=named("fn must be callable, got ", bad)):
            await getattr(manager, method)(bad)
        assert manager.metrics().total_tasks_arrived == 0
        await still_works(manager)


async def test_non_callable_map_function_is_refused(make_manager: Make) -> None:
    """map() given a non-callable fn raises TypeError naming it, before pulling any item."""
    pulled: list[int] = []

    def items() -> Any:
        pulled.append(1)
        yield 1

    async with make_manager() as manager:
        bad: Any = "fn"
        with pytest.raises(TypeError, match="^fn must be callable, got 'fn'$"):
            manager.map(bad, items())
        assert pulled == []
        await still_works(manager)


async def test_coroutine_object_instead_of_function(make_manager: Make) -> None:
    """Passing a called task (a coroutine object) fails with TypeError showing the coroutine."""

    async def work(resource: Resource) -> int:
        return 1

    async with make_manager() as manager:
        called: Any = work(Resource(-1))
        try:
            with pytest.raises(TypeError, match="fn must be callable, got <coroutine object"):
                _ = manager.submit(called)
            with pytest.raises(TypeError, match="fn must be callable, got <coroutine object"):
                await manager.queue_task(called)
        finally:
            called.close()
        await still_works(manager)


def sync_task(resource: Resource) -> int:
    return 42


sync_map_fn: Any = lambda resource, item: item  # noqa: E731 - a map fn that is not async


@pytest.mark.parametrize("form", ["future", "await", "callback", "run_task", "map"])
async def test_sync_function_as_task_fails_that_task_only(make_manager: Make, form: str) -> None:
    """A task that returns a non-awaitable fails with TypeError naming it and its result."""
    message = r"task function .*sync_task.* returned 42, not an awaitable"
    async with make_manager(max_retries=0) as manager:
        bad: Any = sync_task
        if form == "future":
            with pytest.raises(TypeError, match=message):
                await manager.submit(bad)
        elif form == "await":
            with pytest.raises(TypeError, match=message):
                await manager.queue_task(bad)
        elif form == "run_task":
            with pytest.raises(TypeError, match=message):
                await manager.run_task(bad)
        elif form == "callback":
            got: list[BaseException | None] = []
            manager.queue_task_with_callback(bad, lambda r, e: got.append(e))
            while not got:
                await asyncio.sleep(0)
            assert isinstance(got[0], TypeError) and "returned 42" in str(got[0])
        else:
            with pytest.raises(TypeError, match=r"returned 42, not an awaitable"):
                async for _ in manager.map(sync_map_fn, [42]):
                    pass
        await still_works(manager)


async def test_sync_function_is_retried_like_any_failure(make_manager: Make) -> None:
    """With retries, a non-awaitable task fails each attempt; the caller gets every TypeError."""
    async with make_manager() as manager:
        bad: Any = sync_task
        with pytest.raises(MaxRetriesExceededError) as caught:
            await manager.submit(bad, retries=2, backoff=lambda attempt: 0.0)
        assert [type(e) for e in caught.value.errors] == [TypeError] * 3
        await still_works(manager)


async def test_task_with_wrong_signature_fails_that_task_only(make_manager: Make) -> None:
    """A task function that takes no resource fails with the TypeError naming the function."""

    async def no_resource() -> int:
        return 1

    async with make_manager() as manager:
        bad: Any = no_resource
        with pytest.raises(TypeError, match=r"no_resource\(\) takes 0 positional arguments"):
            await manager.queue_task(bad)
        with pytest.raises(TypeError, match=r"no_resource\(\) takes 0 positional arguments"):
            await manager.run_task(bad)
        await still_works(manager)


@pytest.mark.parametrize("bad", NOT_CALLABLE, ids=repr)
@pytest.mark.parametrize("method", WITH_CALLBACK)
async def test_non_callable_callback_is_refused(make_manager: Make, method: str, bad: Any) -> None:
    """A *_with_callback method given a non-callable callback raises TypeError naming it."""
    async with make_manager() as manager:
        with pytest.raises(TypeError, match=named("callback must be callable, got ", bad)):
            getattr(manager, method)(use(1), bad)
        await settle()
        assert manager.metrics().total_tasks_arrived == 0  # the task was not queued
        await still_works(manager)


@pytest.mark.parametrize("retries", [-1, 1.5, "2", True, [0]], ids=repr)
async def test_bad_retries_are_refused(make_manager: Make, retries: Any) -> None:
    """submit(retries=...) not an int >= 0 raises ValueError naming the value."""
    async with make_manager() as manager:
        with pytest.raises(ValueError, match=named("retries must be an int >= 0, got ", retries)):
            _ = manager.submit(use(), retries=retries)
        assert manager.metrics().total_tasks_arrived == 0
        await still_works(manager)


@pytest.mark.parametrize("backoff", [0.5, "exponential", 3])
async def test_bad_backoff_is_refused(make_manager: Make, backoff: Any) -> None:
    """submit(backoff=...) not callable raises TypeError naming the value."""
    async with make_manager() as manager:
        with pytest.raises(TypeError, match=named("backoff must be callable, got ", backoff)):
            _ = manager.submit(use(), retries=1, backoff=backoff)
        assert manager.metrics().total_tasks_arrived == 0
        await still_works(manager)


def raising_backoff(attempt: int) -> float:
    raise ZeroDivisionError("backoff broke")


@pytest.mark.parametrize(
    "backoff",
    [raising_backoff, lambda attempt: "soon", lambda attempt: -5.0, lambda attempt: math.nan],
    ids=["raises", "not-a-number", "negative", "nan"],
)
async def test_misbehaving_backoff_retries_at_once(make_manager: Make, backoff: Any) -> None:
    """A backoff that raises or returns nonsense does not lose the task: it re-runs at once."""
    runs: list[int] = []

    async def flaky(resource: Resource) -> int:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("first run fails")
        return len(runs)

    async with make_manager() as manager:
        assert await manager.submit(flaky, retries=1, backoff=backoff) == 2
        await still_works(manager)


async def test_raising_check_health_is_contained(make_manager: Make) -> None:
    """A check_health that raises is logged; the error counts as healthy; the manager works."""

    def broken_check(error: BaseException) -> bool:
        raise RuntimeError("check_health broke")

    async def fail(resource: Resource) -> None:
        raise KeyError("task error")

    async with make_manager(check_health=broken_check) as manager:
        with pytest.raises(KeyError, match="task error"):
            await manager.queue_task(fail)
        await still_works(manager)


# ----------------------------------------------------------------------- map()


@pytest.mark.parametrize("items", [42, None, 3.5], ids=repr)
async def test_non_iterable_map_items_are_refused(make_manager: Make, items: Any) -> None:
    """map() over a non-iterable raises TypeError naming the items."""
    async with make_manager() as manager:
        with pytest.raises(
            TypeError,
            match=named("items must be an iterable or async iterable, got ", items),
        ):
            manager.map(lambda r, i: use(i)(r), items)
        await still_works(manager)


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2", True])
async def test_bad_max_in_flight_is_refused(make_manager: Make, limit: Any) -> None:
    """map(max_in_flight=...) not an int >= 1 raises ValueError naming the value."""
    async with make_manager() as manager:
        with pytest.raises(
            ValueError, match=named("max_in_flight must be an int >= 1, got ", limit)
        ):
            manager.map(lambda r, i: use(i)(r), [1], max_in_flight=limit)
        await still_works(manager)


async def test_map_items_that_raise_reach_the_consumer(make_manager: Make) -> None:
    """An items iterator that raises: its error reaches the loop unchanged; nothing is left."""

    def items() -> Any:
        yield 1
        yield 2
        raise LookupError("the source broke")

    async with make_manager() as manager:
        seen: list[int] = []
        with pytest.raises(LookupError, match="the source broke"):
            async for value in manager.map(lambda r, i: use(i)(r), items()):
                seen.append(value)
        assert seen in ([], [1], [1, 2])
        await settle()
        await still_works(manager)


# ------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("seconds", [-1, -0.5, "1", True, [1]], ids=repr)
async def test_bad_stop_timeout_is_refused(make_manager: Make, seconds: Any) -> None:
    """stop(timeout=...) not a number >= 0 raises ValueError naming it; nothing stops."""
    async with make_manager() as manager:
        with pytest.raises(
            ValueError, match=f"timeout must be .*, got {re.escape(repr(seconds))}$"
        ):
            await manager.stop(timeout=seconds)
        assert manager.state == "running"
        await still_works(manager)


@pytest.mark.parametrize("method", NON_BLOCKING + WITH_CALLBACK)
async def test_non_blocking_call_without_running_loop(make_manager: Make, method: str) -> None:
    """A non-blocking method called where no loop runs (a thread) says so; the manager works."""

    def from_thread(manager: TaskManager[Any, Any]) -> BaseException | None:
        args: tuple[Any, ...] = (use(), lambda r, e: None) if "callback" in method else (use(),)
        try:
            getattr(manager, method)(*args)
        except RuntimeError as exc:
            return exc
        return None

    async with make_manager() as manager:
        error = await asyncio.to_thread(from_thread, manager)
        assert isinstance(error, RuntimeError)
        assert "called from the event loop the manager runs in" in str(error)
        assert "submit_threadsafe" in str(error)
        await still_works(manager)


async def _try_submit(manager: TaskManager[Any, Any]) -> str:
    """Queue one task: "accepted", or the RuntimeError's message."""
    try:
        await manager.queue_task(use())
    except RuntimeError as exc:
        return str(exc)
    return "accepted"


async def test_call_from_another_event_loop(make_manager: Make) -> None:
    """Submitting from a different event loop raises RuntimeError saying so."""

    def other_loop(manager: TaskManager[Any, Any]) -> str:
        return asyncio.run(_try_submit(manager))

    async with make_manager() as manager:
        message = await asyncio.to_thread(other_loop, manager)
        assert message.startswith("the task manager runs in a different event loop")
        assert "submit_threadsafe" in message  # the way in from another thread
        await still_works(manager)


@pytest.mark.parametrize("new_loop", loop_factories())
def test_call_after_its_loop_stopped(tracker: Tracker, new_loop: Callable[[], Any]) -> None:
    """A call from a new loop in the same thread, once the manager's loop stopped, is refused."""
    manager: TaskManager[Any, Any] = TaskManager(
        Config(
            on_create=tracker.create,
            on_destroy=tracker.destroy,
            worker_count=2,
            burst_interval=None,
        )
    )
    loop = new_loop()
    try:
        loop.run_until_complete(manager.__aenter__())  # the loop stops; the manager runs on
        other = new_loop()
        try:
            message = other.run_until_complete(_try_submit(manager))
            assert message.startswith("the task manager runs in a different event loop")
        finally:
            other.close()
        assert loop.run_until_complete(manager.queue_task(use(7))) == 7
        loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()
    tracker.assert_balanced()


async def test_submitting_before_entering(make_manager: Make, tracker: Tracker) -> None:
    """Every entry point used before 'async with' says to enter first; entering then works."""
    manager = make_manager()
    for method in NON_BLOCKING:
        with pytest.raises(RuntimeError, match="enter it with 'async with' first"):
            getattr(manager, method)(use())
    for method in AWAITING:
        with pytest.raises(RuntimeError, match="enter it with 'async with' first"):
            await getattr(manager, method)(use())
    assert tracker.created == []
    async with manager:
        await still_works(manager)


async def test_entering_twice_is_refused(make_manager: Make) -> None:
    """Entering a running or finished manager raises RuntimeError; the running one works."""
    manager = make_manager()
    async with manager:
        with pytest.raises(RuntimeError, match="runs once"):
            async with manager:
                pass
        assert manager.state == "running"
        await still_works(manager)
    with pytest.raises(RuntimeError, match="runs once"):
        async with manager:
            pass
    assert manager.state == "stopped"


async def test_stop_awaited_inside_a_task_is_refused(make_manager: Make) -> None:
    """A task that awaits stop() of its own manager gets RuntimeError naming stop()."""
    async with make_manager() as manager:

        async def stops_itself(resource: Resource) -> None:
            await manager.stop()

        with pytest.raises(RuntimeError, match=r"stop\(\) awaited inside one of this manager"):
            await manager.queue_task(stops_itself)
        assert manager.state == "running"
        await still_works(manager)


async def test_called_coroutine_instead_of_function_gets_a_hint(make_manager: Make) -> None:
    """Passing fn() instead of fn says so, and closes the coroutine (no "never awaited")."""

    async def task(resource: object) -> int:
        return 1

    async with make_manager() as manager:
        coroutine = task(None)
        with pytest.raises(TypeError, match="not a called coroutine"):
            manager.submit(coroutine)  # type: ignore[arg-type,unused-awaitable]
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
        assert await manager.queue_task(task) == 1
