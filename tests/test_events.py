"""manager.events(): typed lifecycle events, bounded per subscriber; Config.tracer hooks."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import (
    Event,
    EventsLost,
    MaxRetriesExceededError,
    ResourceCreated,
    ResourceDestroyed,
    ShutdownBegan,
    ShutdownFinished,
    TaskFailed,
    TaskManager,
    TaskRetried,
    WorkerAdded,
    WorkerReplaced,
)

from .helpers import Resource, Tracker, use

Make = Callable[..., TaskManager[Any, Any]]


class Broken(Exception):
    """Unhealthy."""


def health(exc: BaseException) -> bool:
    return not isinstance(exc, Broken)


async def breaks(resource: Resource) -> None:
    raise Broken("gone")


async def collect(stream: Any) -> list[Event]:
    return [event async for event in stream]


async def test_events_tell_the_story_of_a_manager(make_manager: Make) -> None:
    """A subscriber sees workers added, a replacement with its error, retries, the end."""
    manager = make_manager(worker_count=1, resource_pool_size=0, check_health=health)
    stream = manager.events()
    reader = asyncio.create_task(collect(stream))
    async with manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.submit(breaks, retries=0)
    events = await reader
    kinds = [type(event) for event in events]
    assert kinds[0] is ResourceCreated and WorkerAdded in kinds
    replaced = [event for event in events if isinstance(event, WorkerReplaced)]
    assert len(replaced) == 4  # the first run and 3 unhealthy re-runs (max_retries=3)
    assert all(isinstance(event.error, Broken) for event in replaced)
    retries = [event for event in events if isinstance(event, TaskRetried)]
    assert [r.attempt for r in retries] == [2, 3, 4] and all(r.unhealthy for r in retries)
    failed = [event for event in events if isinstance(event, TaskFailed)]
    assert len(failed) == 1 and failed[0].attempts == 4
    assert isinstance(failed[0].error, MaxRetriesExceededError)
    created = sum(isinstance(event, ResourceCreated) for event in events)
    assert sum(isinstance(event, ResourceDestroyed) for event in events) == created == 4
    assert [e.how for e in events if isinstance(e, ShutdownBegan)] == ["stop"]
    assert isinstance(events[-1], ShutdownFinished)
    assert [event.at for event in events] == sorted(event.at for event in events)


async def test_a_slow_subscriber_is_told_what_it_lost(make_manager: Make) -> None:
    """A subscriber that does not read keeps its buffer's newest events and a lost count."""
    manager = make_manager(worker_count=1, resource_pool_size=0, check_health=health)
    stream = manager.events(buffer=2)
    async with manager:
        for _ in range(3):
            with pytest.raises(MaxRetriesExceededError):
                await manager.submit(breaks, retries=0, once=True)
    events = await collect(stream)
    assert isinstance(events[0], EventsLost) and events[0].count > 0
    assert [type(event) for event in events[1:]] == [ResourceDestroyed, ShutdownFinished]


async def test_kill_is_announced_as_kill(make_manager: Make) -> None:
    """kill() publishes ShutdownBegan(how='kill'); a stream made after the end is empty."""
    manager = make_manager()
    stream = manager.events()
    async with manager:
        await manager.kill()
    events = await collect(stream)
    assert [e.how for e in events if isinstance(e, ShutdownBegan)] == ["kill"]
    assert await collect(manager.events()) == []


async def test_with_no_subscriber_no_event_is_built(
    make_manager: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody listening: the engine never even builds an event."""
    import tasker_aio._engine.outcomes
    import tasker_aio._engine.worker

    def refuse(**fields: Any) -> Any:
        raise AssertionError("an event was built with no subscriber")

    monkeypatch.setattr(tasker_aio._engine.worker, "WorkerReplaced", refuse)
    monkeypatch.setattr(tasker_aio._engine.outcomes, "TaskFailed", refuse)
    async with make_manager(worker_count=1, check_health=health, max_retries=0) as manager:
        with pytest.raises(MaxRetriesExceededError):
            await manager.queue_task(breaks)
        assert await manager.queue_task(use(1)) == 1


def test_events_buffer_is_checked(make_manager: Make) -> None:
    """events(buffer=0) is refused, naming the argument and the value."""
    with pytest.raises(ValueError, match="buffer must be an int >= 1, got 0"):
        make_manager().events(buffer=0)


# -------------------------------------------------------------------------- tracer

REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="-")
SPAN: contextvars.ContextVar[str] = contextvars.ContextVar("span", default="-")


class Recorder:
    """A TaskTracer that records its calls and sets SPAN while a task runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def begin(self, priority: bool) -> str:
        trace = f"span-of-{REQUEST.get()}"  # begun in the caller's context
        self.calls.append(("begin", trace, priority))
        return trace

    def enter(self, trace: str, burst: bool) -> contextvars.Token[str]:
        self.calls.append(("enter", trace, burst))
        return SPAN.set(trace)

    def leave(self, token: contextvars.Token[str]) -> None:
        self.calls.append(("leave",))
        SPAN.reset(token)

    def end(self, trace: str, outcome: str, attempts: int, error: BaseException | None) -> None:
        self.calls.append(("end", trace, outcome, attempts, type(error).__name__))


async def test_tracer_follows_a_task_from_its_caller_to_its_answer(make_manager: Make) -> None:
    """begin in the caller's context, enter/leave around each run, end with the outcome."""
    tracer = Recorder()
    runs = 0

    async def seen(resource: Resource) -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ValueError("once")
        return SPAN.get()

    async with make_manager(
        worker_count=1, tracer=tracer, task_retries=1, retry_backoff=lambda attempt: 0.0
    ) as manager:
        REQUEST.set("r1")
        assert await manager.queue_task_with_priority(seen) == "span-of-r1"
    assert tracer.calls == [
        ("begin", "span-of-r1", True),
        ("enter", "span-of-r1", False),
        ("leave",),
        ("enter", "span-of-r1", False),
        ("leave",),
        ("end", "span-of-r1", "completed", 2, "NoneType"),
    ]


async def test_tracer_hears_every_kind_of_end(make_manager: Make) -> None:
    """Failed, discarded (caller gave up while queued) and killed tasks are all ended."""
    tracer = Recorder()
    gate = asyncio.Event()
    async with make_manager(worker_count=1, tracer=tracer) as manager:
        with pytest.raises(ValueError, match="no"):
            await manager.queue_task(lambda r: _fail())
        held = manager.submit(use(gate=gate))
        queued = manager.submit(use())
        queued.cancel()
        await manager.kill()
        assert held.done()
    outcomes = [call[2] for call in tracer.calls if call[0] == "end"]
    assert outcomes == ["failed", "discarded", "killed"]


async def _fail() -> None:
    raise ValueError("no")


def test_a_tracer_must_have_the_protocols_methods(tracker: Tracker) -> None:
    """Config(tracer=object()) is a ConfigError naming the protocol."""
    from tasker_aio import Config, ConfigError

    with pytest.raises(ConfigError, match="TaskTracer"):
        TaskManager(
            Config(
                on_create=tracker.create,
                on_destroy=tracker.destroy,
                worker_count=1,
                tracer=object(),  # type: ignore[arg-type]
            )
        )
