"""FastAPI + tasker_aio + Ray: the FastAPI example's endpoints, each model a Ray actor.

The endpoints are ``examples/fastapi_app.py``'s own router, unchanged: a task calls
``model.predict(n, delay)`` and does not care that ``model`` is now an
:class:`~tasker_aio.ray.ActorProxy` for an actor that may live on another machine.
Each actor asks Ray for ``--num-cpus`` CPUs and ``--num-gpus`` GPUs, so Ray places it
where those are free; a client that goes away cancels the remote call.

Run it (needs ``pip install "tasker-aio[web,ray]"``), from the repository root::

    python -m examples.ray_app                       # a local Ray on this machine
    python -m examples.ray_app --address HOST:6379   # an existing cluster
    python -m examples.ray_app --address HOST:6379 --num-gpus 1 --workers 4
    curl 'http://127.0.0.1:8000/work/7?delay=0.5'    # {"input":7,"output":49,"model":<pid>}
    curl 'http://127.0.0.1:8000/urgent/7'            # the same, through the priority queue
    curl 'http://127.0.0.1:8000/stats'

Without ``--address`` (and without ``RAY_ADDRESS``), ``ray.init()`` starts a local Ray,
and this script first sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` so that every Ray
process listens on 127.0.0.1 only (Ray otherwise binds every interface). Against a
real cluster the variable must stay unset: the cluster's nodes connect back to this
driver by its network address. The nodes need this repository and its dependencies
(the same image, or a Ray ``runtime_env``), since they import ``RayModel`` from here.

The manager never calls ``ray.init``: :func:`main` does, before serving. An app that
embeds :func:`create_app` connects to Ray itself first. The manager runs in the app's
lifespan (``tasker_aio.fastapi.task_manager_lifespan``) and ends with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

from examples.fastapi_app import router
from examples.models import Prediction
from tasker_aio import Config
from tasker_aio.fastapi import (
    ClientDisconnected,
    client_disconnected_handler,
    task_manager_lifespan,
)

if TYPE_CHECKING:
    from tasker_aio.ray import ActorProxy


class RayModel:
    """A fake model living in a Ray actor: loaded once in ``__init__``, then called."""

    def __init__(self, load_cost: float = 0.0) -> None:
        time.sleep(load_cost)  # pretend to read weights onto the device
        self.ident = os.getpid()

    async def predict(self, n: int, delay: float) -> Prediction:
        await asyncio.sleep(delay)  # pretend to run inference; a cancel interrupts it
        return {"input": n, "output": n * n, "model": self.ident}

    def close(self) -> None:
        """Called by tasker_aio before the actor is killed: free what the model holds."""


def create_app(
    *,
    actor_options: dict[str, Any] | None = None,
    load_cost: float = 0.0,
    **config_overrides: Any,
) -> FastAPI:
    """Build the app; Ray must be initialised before it starts.

    Args:
        actor_options: Ray actor options of each model (default ``{"num_cpus": 1}``).
        load_cost: seconds each model takes to load.
        **config_overrides: :func:`tasker_aio.ray.actor_config` arguments and
            :class:`tasker_aio.Config` fields.
    """
    options = {"num_cpus": 1} if actor_options is None else actor_options
    settings: dict[str, Any] = {"worker_count": 1, "max_worker_count": 2, **config_overrides}

    def config(app: object) -> Config[ActorProxy]:
        # Imported at startup, so that main() can set Ray's environment before Ray loads.
        from tasker_aio.ray import actor_config

        return actor_config(RayModel, args=(load_cost,), actor_options=options, **settings)

    app = FastAPI(
        title="tasker_aio on Ray",
        lifespan=task_manager_lifespan(config),
        exception_handlers={ClientDisconnected: client_disconnected_handler},
    )
    app.include_router(router)  # the FastAPI example's endpoints, unchanged
    return app


def main(argv: list[str] | None = None) -> None:
    """Connect to Ray (local or ``--address``), then serve the app on 127.0.0.1:8000."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--address", help="a Ray cluster (host:port); default: local Ray")
    parser.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per model")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per model")
    parser.add_argument("--workers", type=int, default=2, help="models at start")
    parser.add_argument("--max-workers", type=int, default=4, help="models at most")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    local = args.address is None and not os.environ.get("RAY_ADDRESS")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    import ray  # only now: Ray reads that variable when it is imported

    ray.init(address=args.address, include_dashboard=False if local else None)
    # Never ask for more models than the cluster can place: an unplaceable actor only
    # fails after create_timeout, and bursting would keep trying.
    cpus = ray.cluster_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]
    fits = int(cpus // args.num_cpus) if args.num_cpus else args.max_workers
    maximum = max(1, min(args.max_workers, fits))
    app = create_app(
        actor_options={"num_cpus": args.num_cpus, "num_gpus": args.num_gpus},
        worker_count=min(args.workers, maximum),
        max_worker_count=maximum,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
