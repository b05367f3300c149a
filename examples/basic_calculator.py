"""Basic tasker_aio setup: a simple calculator on two workers.

A port of the Go tasker "Basic tasker setup" example. It submits three tasks in the
three submission styles:

- ``await manager.queue_task(fn)``: wait for the result (here from a concurrent caller
  task, as the Go example does from a goroutine);
- ``manager.queue_task_with_callback(fn, callback)``: return at once, the callback
  gets ``(result, error)`` later;
- ``manager.queue_task_async(fn)``: return an ``asyncio.Future`` at once.

It prints each task's result, then the manager's stats, then
``Basic usage example finished.``; the two resources are destroyed on the way out.
Task 1 is queued last (its caller task first runs when ``main`` awaits), so it waits
for a free worker::

    Task 2 (Addition) Result: 35 (took 50 ms)
    Task 3 (Subtraction) Result: 60 (took 70 ms)
    Task 1 (Multiplication) Result: 250 (took 100 ms)
    Active Workers: 2
    Queued Tasks: 0
    Available Resources: 0
"""

from __future__ import annotations

import asyncio
import time

from tasker_aio import Config, TaskManager


class CalculatorResource:
    """A placeholder resource; a real one could be a connection to a math service."""


def create_calc_resource() -> CalculatorResource:
    print("INFO: Creating CalculatorResource")
    return CalculatorResource()


def destroy_calc_resource(resource: CalculatorResource) -> None:
    print("INFO: Destroying CalculatorResource")


def elapsed_ms(start: float) -> str:
    return f"{(time.monotonic() - start) * 1000:.0f} ms"


async def multiply(resource: CalculatorResource) -> int:
    await asyncio.sleep(0.05)  # simulate some work
    a, b = 10, 25
    print(f"Worker processing: {a} * {b}")
    return a * b


async def add(resource: CalculatorResource) -> int:
    await asyncio.sleep(0.05)
    a, b = 10, 25
    print(f"Worker processing: {a} + {b}")
    return a + b


async def subtract(resource: CalculatorResource) -> int:
    await asyncio.sleep(0.07)
    a, b = 100, 40
    print(f"Worker processing: {a} - {b}")
    return a - b


async def main() -> None:
    print("--- Basic Usage: Simple Calculator ---")
    config = Config(
        on_create=create_calc_resource,
        on_destroy=destroy_calc_resource,
        worker_count=2,  # two base workers
        resource_pool_size=0,  # no run_task() here, so no idle resources are kept
        burst_interval=None,  # a fixed worker count keeps the printed stats reproducible
    )
    async with TaskManager[CalculatorResource, int](config) as manager:
        # 1. Await the result: a concurrent caller, in place of the Go goroutine.
        async def task1_caller() -> None:
            start = time.monotonic()
            try:
                product = await manager.queue_task(multiply)
            except Exception as exc:
                print(f"Task 1 failed: {exc}")
            else:
                print(f"Task 1 (Multiplication) Result: {product} (took {elapsed_ms(start)})")

        # 2. A callback: queue_task_with_callback returns at once.
        task2_done = asyncio.Event()
        task2_start = time.monotonic()

        def on_task2(total: int | None, error: BaseException | None) -> None:
            if error is not None:
                print(f"Task 2 failed: {error}")
            else:
                print(f"Task 2 (Addition) Result: {total} (took {elapsed_ms(task2_start)})")
            task2_done.set()

        async with asyncio.TaskGroup() as callers:
            print("Queuing a simple Multiplication task...")
            callers.create_task(task1_caller())

            print("Queuing another addition task...")
            manager.queue_task_with_callback(add, on_task2)

            # 3. A future: queue_task_async returns an asyncio.Future at once.
            print("Queuing another subtraction task...")
            task3_start = time.monotonic()
            future = manager.queue_task_async(subtract)
            try:
                difference = await future
            except Exception as exc:
                print(f"Task 3 failed: {exc}")
            else:
                print(f"Task 3 (Subtraction) Result: {difference} (took {elapsed_ms(task3_start)})")

            await task2_done.wait()
        # The TaskGroup has waited for task 1's caller: every task is done.

        stats = manager.stats()
        print("\n--- Current Stats ---")
        print(f"Active Workers: {stats.active_workers}")
        print(f"Queued Tasks: {stats.queued_tasks}")
        print(f"Available Resources: {stats.available_resources}")
        print("----------------------")
        print("Basic usage example finished.")
    # Leaving the block stops the manager gracefully and destroys both resources.


if __name__ == "__main__":
    asyncio.run(main())
