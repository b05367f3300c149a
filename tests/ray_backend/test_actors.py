"""What only actors do: process death, calls that will not stop, remote errors, placement.

Runs on the session's local Ray (see conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tasker_aio import (
    ConfigError,
    ResourceCreationError,
    TaskManager,
)

from .backends import Harness, actor_states, actors_dead, eventually, live_actors
from .sockets import assert_loopback_only
from .workers import BadInit, SyncWorker, Unplaceable

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("ray_session")]

ROOT = Path(__file__).resolve().parents[2]


def actor_id(proxy: Any) -> str:
    return str(proxy.handle._actor_id.hex())


async def test_sigkill_mid_task_reruns_on_a_new_actor(actors: Harness) -> None:
    """An actor SIGKILLed mid-task: the task re-runs on a new actor; the caller gets the value."""
    async with actors.make(max_retries=1) as manager:
        pid = await manager.queue_task(lambda w: w.pid())
        caller = manager.queue_task_async(lambda w: w.step("run", gate="go"))
        await actors.until("run")
        os.kill(pid, signal.SIGKILL)
        await actors.until("run", 2)  # the re-run, on the replacement
        await actors.board.open("go")
        assert await caller == "run"
        assert await manager.queue_task(lambda w: w.pid()) != pid
    assert len(actors.created) == 2


async def test_call_that_will_not_stop_gets_its_actor_killed(actors: Harness) -> None:
    """A cancelled call still running after cancel_timeout: its actor is killed, not shared."""
    async with actors.make(max_worker_count=1, cancel_timeout=0.2) as manager:
        first = await manager.queue_task(lambda w: w.whoami())
        caller = manager.queue_task_async(lambda w: w.hang("hung", seconds=600))
        await actors.until("hung")
        caller.cancel()
        started = time.monotonic()
        second = await manager.queue_task(lambda w: w.whoami())
        assert second != first  # a fresh actor, created at once rather than on a failure
        assert time.monotonic() - started < 30
        await actors_dead([actor_id(actors.created[0])])
    assert len(actors.created) == 2


async def test_actor_error_keeps_its_type_and_remote_traceback(actors: Harness) -> None:
    """An exception raised in the actor arrives as its own type, the remote traceback in notes."""
    async with actors.make() as manager:
        with pytest.raises(ValueError, match="boom") as caught:
            await manager.queue_task(lambda w: w.flaky("boom", failures=1))
    error = caught.value
    assert type(error) is ValueError
    assert str(error) == "boom attempt 1"
    (note,) = error.__notes__
    assert note.startswith("Raised in a Ray actor:")
    assert "Worker.flaky()" in note
    assert 'workers.py", line' in note
    assert "in flaky" in note


async def test_a_method_the_actor_lacks_is_an_attribute_error(actors: Harness) -> None:
    """Calling a method the actor class does not define fails at once with AttributeError."""
    async with actors.make() as manager:
        with pytest.raises(AttributeError, match="no_such_method"):
            await manager.queue_task(lambda w: w.no_such_method())
        assert await manager.queue_task(lambda w: w.call("echo", "via call")) == "via call"


async def test_user_check_health_combines_with_the_built_in_check(actors: Harness) -> None:
    """A user's check_health adds unhealthy errors; actor death stays unhealthy regardless."""
    async with actors.make(max_retries=1, check_health=lambda exc: True) as manager:
        first = await manager.queue_task(lambda w: w.whoami())
        after_death = await manager.queue_task(lambda w: w.break_("die", times=1))
        assert after_death != first
    async with actors.make(
        max_retries=1, check_health=lambda exc: not isinstance(exc, ValueError)
    ) as manager:
        first = await manager.queue_task(lambda w: w.whoami())
        assert await manager.queue_task(lambda w: w.flaky("bad", failures=1)) == 2
        assert await manager.queue_task(lambda w: w.whoami()) != first
    assert len(actors.created) == 4


async def test_close_runs_before_the_actor_is_killed(actors: Harness) -> None:
    """on_destroy calls the actor's close() and then kills it."""
    async with actors.make(worker_count=2) as manager:
        calls = [manager.queue_task(lambda w: w.whoami()) for _ in range(4)]
        idents = set(await asyncio.gather(*calls))
    notes = await actors.board.notes()
    assert {note.removeprefix("closed:") for note in notes} >= idents
    assert len([note for note in notes if note.startswith("closed:")]) == 2


async def test_close_is_bounded_by_close_timeout() -> None:
    """A close() that hangs is abandoned after close_timeout and the actor killed anyway."""
    from tasker_aio.ray import ActorProxy, actor_config

    proxies: list[ActorProxy] = []
    config = actor_config(SyncWorker, args=(600.0,), worker_count=1, close_timeout=0.3)
    async with TaskManager[ActorProxy, Any](config) as manager:
        proxies.append(await manager.queue_task(_itself))
        started = time.monotonic()
        await manager.stop()
        assert time.monotonic() - started < 10
    await actors_dead([actor_id(proxies[0])])


async def _itself(proxy: Any) -> Any:
    return proxy


async def freeze(worker: Any) -> str:
    """A task that leaves its actor frozen (blocked in a call nobody awaits) and idle."""
    ident: str = await worker.whoami()
    worker.handle.hang.remote("frozen", 3600)
    return ident


async def test_unplaceable_actor_is_a_failed_creation() -> None:
    """An actor no node can place fails on_create after create_timeout and is not left pending."""
    from tasker_aio.ray import ActorProxy, actor_config

    config = actor_config(
        Unplaceable,
        actor_options={"resources": {"no_such_resource": 1}},
        create_timeout=0.5,
        worker_count=1,
    )
    started = time.monotonic()
    with pytest.raises(ResourceCreationError) as caught:
        async with TaskManager[ActorProxy, Any](config):
            pass
    assert 0.5 <= time.monotonic() - started < 10
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert "no_such_resource" in str(caught.value.__cause__)
    await eventually(lambda: live_actors("Unplaceable") == [])


async def test_constructor_failure_is_a_failed_creation() -> None:
    """An actor whose constructor raises fails on_create with Ray's ActorDiedError."""
    import ray

    from tasker_aio.ray import ActorProxy, actor_config

    config = actor_config(BadInit, worker_count=1)
    with pytest.raises(ResourceCreationError) as caught:
        async with TaskManager[ActorProxy, Any](config):
            pass
    cause = caught.value.__cause__
    assert isinstance(cause, ray.exceptions.ActorDiedError)
    assert "cannot load the model" in str(cause)
    await eventually(lambda: live_actors("BadInit") == [])


async def test_ping_tells_live_dead_and_frozen_actors_apart(actors: Harness) -> None:
    """The health ping answers True for a live actor, False for a dead or a frozen one."""
    from tasker_aio.ray import ping

    async with actors.make(worker_count=3, max_worker_count=3):
        live, dead, frozen = actors.created
        live_ident = await live.whoami()
        os.kill(await dead.pid(), signal.SIGKILL)
        await eventually(lambda: actor_states([actor_id(dead)])[actor_id(dead)] == "DEAD")
        frozen.handle.hang.remote("frozen", 3600)  # not awaited: idle for the manager
        await actors.until("frozen")
        assert await ping(live, 5.0)
        assert not await ping(dead, 5.0)
        started = time.monotonic()
        assert not await ping(frozen, 0.3)
        assert time.monotonic() - started < 5
    # The dead and the frozen one were marked lost: stop() called close() on the live one only.
    closed = [note for note in await actors.board.notes() if note.startswith("closed:")]
    assert closed == [f"closed:{live_ident}"]


async def test_check_resource_is_the_ping_then_the_users_check(actors: Harness) -> None:
    """actor_config's check_resource: False for a dead actor, else the user's own verdict."""
    verdicts: list[bool] = []

    async def user_check(proxy: Any) -> bool:
        verdicts.append(True)
        return await proxy.echo(True) is True

    async with actors.make(worker_count=2, check_resource=user_check) as manager:
        check = manager_config(actors).check_resource
        live, dead = actors.created
        assert await check(live) is True
        os.kill(await dead.pid(), signal.SIGKILL)
        await eventually(lambda: actor_states([actor_id(dead)])[actor_id(dead)] == "DEAD")
        assert await check(dead) is False
        assert verdicts == [True]  # the user's check runs only on a live actor
        await manager.queue_task(lambda w: w.echo(None))


def manager_config(harness: Harness) -> Any:
    """The Config the harness built last (the tracked copy keeps every other field)."""
    return harness.configs[-1]


# ping_timeout 3 s below: long enough that a live actor on a busy machine always answers,
# so only the frozen one is replaced.


async def test_frozen_idle_actor_is_replaced_by_the_check(actors: Harness) -> None:
    """A frozen idle actor fails the ping before the next task and is replaced; no close()."""
    async with actors.make(
        max_retries=0, check_idle_after=0, ping_timeout=3.0, close_timeout=60
    ) as manager:
        frozen = await manager.queue_task(freeze)
        await actors.until("frozen")
        assert await manager.queue_task(lambda w: w.whoami()) != frozen
        assert manager.metrics().total_tasks_failed == 0
        started = time.monotonic()
    assert time.monotonic() - started < 30  # close() of the frozen actor was not awaited
    assert f"closed:{frozen}" not in await actors.board.notes()


async def test_dead_idle_actor_is_replaced_before_a_task_sees_it(actors: Harness) -> None:
    """An idle actor SIGKILLed is found by the ping: the next task runs without a failure."""
    async with actors.make(max_retries=0, check_idle_after=0, ping_timeout=3.0) as manager:
        os.kill(await manager.queue_task(lambda w: w.pid()), signal.SIGKILL)
        assert await manager.queue_task(lambda w: w.echo("fine")) == "fine"
        assert manager.metrics().total_tasks_failed == 0
    assert len(actors.created) >= 2


async def test_keepalive_replaces_a_frozen_actor_without_any_task(actors: Harness) -> None:
    """check_interval pings idle actors: a frozen one is replaced with no task involved."""
    async with actors.make(check_interval=0.2, ping_timeout=3.0) as manager:
        (frozen,) = actors.created
        await manager.queue_task(freeze)
        await actors.until("frozen")
        await eventually(lambda: any(gone is frozen for gone in actors.destroyed))
        assert await manager.queue_task(lambda w: w.echo("fine")) == "fine"


def test_actor_config_rejects_what_it_cannot_use() -> None:
    """actor_config refuses a decorated class, on_create/on_destroy, bad timeouts and options."""
    import ray

    from tasker_aio.ray import actor_config

    with pytest.raises(TypeError, match="plain class"):
        actor_config(ray.remote(SyncWorker), worker_count=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="makes on_create"):
        actor_config(SyncWorker, worker_count=1, on_create=SyncWorker)
    with pytest.raises(ConfigError, match="ping_timeout must be a positive number.*0"):
        actor_config(SyncWorker, worker_count=1, ping_timeout=0)
    with pytest.raises(ConfigError, match="actor_options rejected by Ray"):
        actor_config(SyncWorker, worker_count=1, actor_options={"num_cpus": -1})
    config = actor_config(SyncWorker, worker_count=1)
    assert config.resource_pool_size == 0
    assert config.check_health is not None
    assert actor_config(SyncWorker, worker_count=1, resource_pool_size=2).resource_pool_size == 2


def test_importing_tasker_aio_imports_no_ray() -> None:
    """The core package never imports Ray; only tasker_aio.ray does."""
    code = "import sys, tasker_aio; assert 'ray' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_ray_listens_on_loopback_only() -> None:
    """Every socket the local Ray (this driver and its process tree) listens on is loopback."""
    assert_loopback_only()


async def test_no_actor_outlives_stop_or_kill(actors: Harness) -> None:
    """After stop() and after kill(), Ray reports no actor of the manager alive."""
    for ending in ("stop", "kill"):
        manager = actors.make(worker_count=2, resource_pool_size=1)
        async with manager:
            await asyncio.gather(*(manager.queue_task(lambda w: w.whoami()) for _ in range(4)))
            await getattr(manager, ending)()
        await actors_dead([actor_id(proxy) for proxy in actors.created])
        assert live_actors("Worker") == []
