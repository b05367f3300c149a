"""Several Ray nodes on one machine (``ray.cluster_utils.Cluster``): losing a node.

Not collected by the main run (the name does not match ``test_*.py``): a Cluster needs
its own head, and a pytest process gets one ``ray.init``. ``test_cluster.py`` runs this
file in a pytest subprocess; run it directly with
``pytest tests/ray_backend/cluster_scenarios.py``.

Each test adds two worker nodes offering a resource of its own (``slot_<name>``, four
each), so its actors land only there; the head offers none, so the driver never loses
its node. The GCS health check is tightened so that a node killed without warning is
declared dead in seconds rather than the default tens of seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only, before ray loads
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from tasker_aio import TaskManager

from .backends import actors_dead, eventually, import_ray, live_actors
from .sockets import assert_loopback_only
from .workers import NodeWorker

pytestmark = pytest.mark.timeout(180)

# A dead node is declared dead after 5 failed checks 0.5 s apart: seconds, not the
# default tens of seconds; yet a busy machine does not fail 5 checks of 1 s in a row.
HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 5,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head node with no task resources, the driver connected to it."""
    ray = import_ray()
    from ray.cluster_utils import Cluster

    head: Any = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": HEALTH_CHECKS},
    )
    try:
        ray.init(address=head.address, log_to_driver=False, configure_logging=False)
        yield head
    finally:
        ray.shutdown()
        head.shutdown()


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful", "crash"])
async def test_losing_a_node_under_load_answers_every_caller(cluster: Any, graceful: bool) -> None:
    """A node removed under load: every caller gets its value; the work moves to the rest."""
    from tasker_aio.ray import ActorProxy, actor_config

    slot = f"slot_{'graceful' if graceful else 'crash'}"
    kept = cluster.add_node(num_cpus=1, resources={slot: 4})
    doomed = cluster.add_node(num_cpus=1, resources={slot: 4})
    cluster.wait_for_nodes()
    config = actor_config(
        NodeWorker,
        actor_options={"num_cpus": 0, "resources": {slot: 1}, "scheduling_strategy": "SPREAD"},
        create_timeout=30.0,
        worker_count=4,
        max_worker_count=4,
        burst_interval=None,
        max_retries=5,
    )
    proxies: list[ActorProxy] = []
    manager: TaskManager[ActorProxy, Any] = TaskManager(config)
    async with manager:
        nodes = await asyncio.gather(*(manager.queue_task(_node_of(proxies)) for _ in range(8)))
        assert set(nodes) == {kept.node_id, doomed.node_id}  # SPREAD used both

        answered = 0

        async def call(item: int) -> tuple[int, str]:
            nonlocal answered
            result: tuple[int, str] = await manager.queue_task(lambda w: w.work(item, 0.05))
            answered += 1
            return result

        calls = [asyncio.create_task(call(item)) for item in range(60)]
        await eventually(lambda: answered >= 10)
        await asyncio.to_thread(cluster.remove_node, doomed, graceful)
        results = await asyncio.gather(*calls)
        assert [item for item, _ in results] == list(range(60))

        # Recovered: four workers, all on the node that is left.
        await eventually(lambda: manager.stats().active_workers == 4)
        after = await asyncio.gather(*(manager.queue_task(lambda w: w.node()) for _ in range(8)))
        assert set(after) == {kept.node_id}
        assert manager.metrics().total_tasks_failed == 0
    await actors_dead([proxy.handle._actor_id.hex() for proxy in proxies])
    assert live_actors("NodeWorker") == []
    cluster.remove_node(kept)


def _node_of(proxies: list[Any]) -> Any:
    async def task(proxy: Any) -> str:
        if all(proxy is not seen for seen in proxies):
            proxies.append(proxy)
        node: str = await proxy.node()
        return node

    return task


def test_every_node_listens_on_loopback_only(cluster: Any) -> None:
    """The head, its nodes and their workers listen on loopback addresses only."""
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        assert_loopback_only()
    finally:
        cluster.remove_node(node)
