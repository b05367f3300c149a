"""Shared fixtures: a resource tracker that checks the lifecycle invariants."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tasker_aio import Config, TaskManager

from .helpers import Tracker


@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


@pytest.fixture
async def make_manager(tracker: Tracker) -> AsyncIterator[Callable[..., TaskManager[Any, Any]]]:
    """Build managers on the tracker; after the test every resource was destroyed once."""
    made: list[TaskManager[Any, Any]] = []

    def factory(**overrides: Any) -> TaskManager[Any, Any]:
        settings: dict[str, Any] = {
            "on_create": tracker.create,
            "on_destroy": tracker.destroy,
            "worker_count": 2,
            "burst_interval": None,
        }
        settings.update(overrides)
        manager: TaskManager[Any, Any] = TaskManager(Config(**settings))
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        assert manager.state in ("new", "stopped"), f"a test left {manager!r} running"
    tracker.assert_balanced()
