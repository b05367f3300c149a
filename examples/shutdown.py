"""Graceful and immediate shutdown: ``stop()`` finishes the work, ``kill()`` cancels it.

Ports of the Go tasker "Graceful shutdown" and "Immediate shutdown" examples.

1. Graceful: five tasks are queued on two workers and ``stop()`` is called as soon as
   the first one starts. ``stop()`` returns only after all five have completed and both
   resources are destroyed; a submission after it fails with ``ManagerStoppedError``.
2. Immediate: a long task runs on the only worker and a second task waits in the
   queue. ``kill()`` cancels the running task (it sees ``asyncio.CancelledError``),
   drops the queued one (it never runs) and answers both callers with
   ``ManagerStoppedError("task manager was killed")``.

Key lines of output::

    Task manager gracefully shut down.
    Final Active Workers: 0
    Task 0 completed ... Task 4 completed
    New task after stop(): ManagerStoppedError: task manager is shutting down
    Task on Worker 1 cancelled due to shutdown.
    Task manager immediately shut down.
    Final Active Workers: 0
    long task: ManagerStoppedError: task manager was killed
    queued task: ManagerStoppedError: task manager was killed
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tasker_aio import Config, ManagerStoppedError, TaskManager


@dataclass
class HeavyComputeResource:
    id: int


@dataclass
class ResourceFactory:
    """Numbers resources from 1 and prints their creation and destruction."""

    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def create(self) -> HeavyComputeResource:
        resource = HeavyComputeResource(next(self.ids))
        print(f"INFO: Creating ComputeResource {resource.id}")
        return resource

    def destroy(self, resource: HeavyComputeResource) -> None:
        print(f"INFO: Destroying ComputeResource {resource.id}")


async def graceful() -> None:
    print("--- Graceful shutdown: stop() ---")
    factory = ResourceFactory()
    config = Config(
        on_create=factory.create,
        on_destroy=factory.destroy,
        worker_count=2,
        resource_pool_size=0,  # no run_task() here: only the workers hold resources
    )
    first_started = asyncio.Event()

    def compute(task_id: int) -> Callable[[HeavyComputeResource], Awaitable[str]]:
        async def run(resource: HeavyComputeResource) -> str:
            first_started.set()
            print(f"Worker {resource.id} processing Task {task_id}")
            await asyncio.sleep(0.05)  # simulate some work
            return f"Task {task_id} completed"

        return run

    async with TaskManager[HeavyComputeResource, str](config) as manager:
        async with asyncio.TaskGroup() as callers:
            results = [callers.create_task(manager.queue_task(compute(i))) for i in range(5)]

            await first_started.wait()  # let the work begin, then shut down
            print("\nInitiating graceful shutdown...")
            await manager.stop()
            print("Task manager gracefully shut down.")
            print(f"Final Active Workers: {manager.stats().active_workers}")

        for result in results:  # stop() let every queued task finish
            print(result.result())

        try:
            await manager.queue_task(compute(5))
        except ManagerStoppedError as exc:
            print(f"New task after stop(): {type(exc).__name__}: {exc}")


async def immediate() -> None:
    print("\n--- Immediate shutdown: kill() ---")
    factory = ResourceFactory()
    config = Config(
        on_create=factory.create,
        on_destroy=factory.destroy,
        worker_count=1,
        resource_pool_size=0,
    )
    long_started = asyncio.Event()

    async def long_task(resource: HeavyComputeResource) -> str:
        print(f"Worker {resource.id} processing long Task...")
        long_started.set()
        try:
            await asyncio.sleep(5)  # simulate long work; kill() cuts it short
        except asyncio.CancelledError:
            print(f"Task on Worker {resource.id} cancelled due to shutdown.")
            raise
        return "long task completed"

    async def queued_task(resource: HeavyComputeResource) -> str:
        print("This never prints: kill() drops queued tasks.")
        return "queued task completed"

    async def caller(name: str, fn: Callable[[HeavyComputeResource], Awaitable[str]]) -> str:
        try:
            return await manager.queue_task(fn)
        except ManagerStoppedError as exc:
            return f"{name}: {type(exc).__name__}: {exc}"

    async with TaskManager[HeavyComputeResource, str](config) as manager:
        async with asyncio.TaskGroup() as callers:
            results = [
                callers.create_task(caller("long task", long_task)),
                callers.create_task(caller("queued task", queued_task)),
            ]
            await long_started.wait()
            print("\nInitiating immediate shutdown (kill)...")
            await manager.kill()
            print("Task manager immediately shut down.")
            print(f"Final Active Workers: {manager.stats().active_workers}")

        for result in results:  # kill() answered every caller
            print(result.result())


async def main() -> None:
    await graceful()
    await immediate()


if __name__ == "__main__":
    asyncio.run(main())
