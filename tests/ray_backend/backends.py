"""One adapter per backend for the conformance suite, and a tracker that wraps either.

The conformance tests receive a :class:`Harness`: it builds managers on the backend's
resources (local :class:`~.workers.Worker` objects, or Ray actors of the same class),
records every resource created and destroyed, and after the test checks that each was
destroyed exactly once and, for actors, that Ray reports every one of them dead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tasker_aio import Config, TaskManager

from .workers import Board, BoardLike, Broken, RemoteBoard, Worker

__all__ = ["ActorBackend", "Backend", "Board", "Harness", "LocalBackend"]

WAIT = 20.0  # seconds: the longest any awaited event may take before a test fails


def import_ray() -> Any:
    """``import ray``; skip without it, except on CI, where the Ray tests must run."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Ray tests: install the [ray] extra")
        pytest.skip('Ray is not installed: pip install -e ".[ray]"')
    return ray


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    """Poll ``condition`` until it holds: for state only Ray or the clock moves on."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


class Backend:
    """Where resources live. ``board`` is the coordination board tasks see (reset)."""

    name: str
    board: BoardLike

    def config(self, **fields: Any) -> Config[Any]:
        """A Config whose resources are Workers on this backend."""
        raise NotImplementedError

    def is_break(self, exc: BaseException) -> bool:
        """True for the error a task sees when its Worker broke (``Worker.break_``)."""
        raise NotImplementedError

    async def assert_released(self, resources: list[Any]) -> None:
        """Beyond on_destroy having run: the backend freed what it held."""

    async def close(self) -> None:
        """Free the backend's own helpers."""


class LocalBackend(Backend):
    name = "local"

    def __init__(self) -> None:
        self.board = Board()

    def config(self, **fields: Any) -> Config[Any]:
        board = self.board
        return Config(
            on_create=lambda: Worker(board, remote=False),
            on_destroy=Worker.close,
            check_health=lambda exc: not isinstance(exc, Broken),
            **fields,
        )

    def is_break(self, exc: BaseException) -> bool:
        return isinstance(exc, Broken)


class ActorBackend(Backend):
    """Workers as Ray actors; ``board_actor`` is a Board actor shared by the tests."""

    name = "actor"

    def __init__(self, board_actor: Any) -> None:
        self.ray = import_ray()
        self.board = RemoteBoard(board_actor)

    def config(self, **fields: Any) -> Config[Any]:
        from tasker_aio.ray import actor_config

        fields.setdefault("create_timeout", 30.0)
        # Generous: a busy machine must not turn a slow cancellation into a kill
        # (the tests of the kill set their own).
        fields.setdefault("cancel_timeout", 10.0)
        return actor_config(Worker, args=(self.board, True), **fields)

    def is_break(self, exc: BaseException) -> bool:
        return isinstance(exc, self.ray.exceptions.ActorDiedError)

    async def assert_released(self, resources: list[Any]) -> None:
        await actors_dead([proxy.handle._actor_id.hex() for proxy in resources])
        assert live_actors("Worker") == [], "an actor the manager never handed out lives on"


def actor_states(ids: list[str]) -> dict[str, str]:
    """Each actor's state as the GCS reports it (ALIVE, DEAD, PENDING_CREATION, ...)."""
    # ray.util.state needs the dashboard, which the tests leave off; this reads the
    # GCS actor table directly (a DeveloperAPI).
    from ray._private import state

    return {actor_id: state.actors(actor_id=actor_id).get("State", "?") for actor_id in ids}


def live_actors(class_name: str) -> list[str]:
    """Ids of this job's actors of ``class_name`` that Ray does not report DEAD."""
    import ray
    from ray._private import state

    job_id = ray.JobID.from_hex(ray.get_runtime_context().get_job_id())
    return [
        actor_id
        for actor_id, info in state.actors(job_id=job_id).items()
        if info["ActorClassName"] == class_name and info["State"] != "DEAD"
    ]


async def actors_dead(ids: list[str], within: float = WAIT) -> None:
    """Wait until Ray reports every actor in ``ids`` DEAD (ray.kill is asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        states = actor_states(ids)
        if all(value == "DEAD" for value in states.values()):
            return
        assert time.monotonic() < deadline, f"actors still alive: {states}"
        await asyncio.sleep(0.05)


class Harness:
    """Builds managers on a backend; tracks every resource's creation and destruction."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.board = backend.board
        self.created: list[Any] = []
        self.destroyed: list[Any] = []
        self.managers: list[TaskManager[Any, Any]] = []
        self.configs: list[Config[Any]] = []

    @property
    def alive(self) -> int:
        return len(self.created) - len(self.destroyed)

    def make(self, **fields: Any) -> TaskManager[Any, Any]:
        """A manager on this backend: one worker, no bursting, no pool unless given."""
        settings: dict[str, Any] = {
            "worker_count": 1,
            "burst_interval": None,
            "resource_pool_size": 0,
        }
        settings.update(fields)
        config = self.tracked(self.backend.config(**settings))
        self.configs.append(config)
        manager: TaskManager[Any, Any] = TaskManager(config)
        self.managers.append(manager)
        return manager

    def tracked(self, config: Config[Any]) -> Config[Any]:
        created, destroyed = self.created, self.destroyed
        on_create, on_destroy = config.on_create, config.on_destroy

        async def create() -> Any:
            resource = on_create()
            if inspect.isawaitable(resource):
                resource = await resource
            created.append(resource)
            return resource

        async def destroy(resource: Any) -> None:
            assert any(resource is r for r in created), f"destroying unknown {resource!r}"
            assert not any(resource is r for r in destroyed), f"{resource!r} destroyed twice"
            destroyed.append(resource)
            done = on_destroy(resource)
            if inspect.isawaitable(done):
                await done

        return dataclasses.replace(config, on_create=create, on_destroy=destroy)

    async def until(self, tag: str, count: int = 1) -> None:
        """Wait until tasks have noted ``tag`` ``count`` times."""
        async with asyncio.timeout(WAIT):
            await self.board.until(tag, count)

    async def task_notes(self) -> list[str]:
        """What tasks noted, in order (without the ``closed:`` notes of close())."""
        return [note for note in await self.board.notes() if not note.startswith("closed:")]

    async def assert_all_released(self) -> None:
        """Every resource ever created was destroyed exactly once, and freed."""
        assert len(self.destroyed) == len(self.created), (self.created, self.destroyed)
        await self.backend.assert_released(self.created)
