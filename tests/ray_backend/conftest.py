"""A real local Ray for the Ray tests: started once per pytest process, on loopback only.

Ray binds every interface unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set before
``ray`` is imported: Ray then takes 127.0.0.1 as the node's address, and its gRPC
servers listen on that address alone (see docs/ray.md). It is set here, and in .ci/run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network: never try to report

from .backends import ActorBackend, Backend, Board, Harness, LocalBackend, import_ray

RAY_CPUS = 2  # logical CPUs; the test actors ask for none


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark with ``ray`` every test here that needs Ray (all but the local conformance runs)."""
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        local = callspec is not None and callspec.params.get("harness") == "local"
        if item.path.is_relative_to(here) and not local:
            item.add_marker(pytest.mark.ray)


# Package scope: one ray.init for all the tests of this package, which run together, and
# Ray is shut down before the rest of the suite runs on this small machine.
@pytest.fixture(scope="package")
def ray_session() -> Iterator[None]:
    """Start one local Ray (no dashboard, small object store) for this package's tests."""
    ray = import_ray()
    from ray._private import ray_constants

    assert not ray_constants.ENABLE_RAY_CLUSTER, (
        "ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set: "
        "it would listen on every interface"
    )
    ray.init(
        address="local",  # a new Ray, never one found in /tmp/ray/ray_current_cluster
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
        namespace="tasker_aio_tests",
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="package")
def board_actor(ray_session: None) -> Iterator[Any]:
    """One Board actor for every actor test (reset before each): an actor less per test."""
    ray = import_ray()
    handle = ray.remote(Board).remote()
    yield handle
    ray.kill(handle)


async def checked(backend: Backend) -> AsyncIterator[Harness]:
    """A harness on ``backend``; after the test, its resources were all released."""
    await backend.board.reset()
    harness = Harness(backend)
    try:
        yield harness
        for manager in harness.managers:
            assert manager.state in ("new", "stopped"), f"a test left {manager!r} running"
        await harness.assert_all_released()
    finally:
        await backend.close()


@pytest.fixture(params=["local", "actor"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """The same tests on local resources and on Ray actors; checks the lifecycle after."""
    backend: Backend
    if request.param == "actor":
        backend = ActorBackend(request.getfixturevalue("board_actor"))
    else:
        backend = LocalBackend()
    async for checked_harness in checked(backend):
        yield checked_harness


@pytest.fixture
async def actors(board_actor: Any) -> AsyncIterator[Harness]:
    """A harness on Ray actors of Worker, checked after the test like the conformance suite."""
    async for checked_harness in checked(ActorBackend(board_actor)):
        yield checked_harness
