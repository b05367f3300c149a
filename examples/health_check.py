"""Custom health check: an unhealthy error replaces the worker and re-runs the task.

A port of the Go tasker "Custom health check" example, made deterministic: no random
numbers, resource ids come from a counter, and each image's crashes are scripted.

``check_health`` returns False for a ``processor_crash`` error, so the worker's
``ImageProcessor`` is destroyed and a fresh one created in its place, and the task is
re-run (``max_retries=1``: at most one re-run after an unhealthy failure). The first
image crashes once and succeeds on its re-run; the second crashes every time and fails
with ``MaxRetriesExceededError``. "Worker N" is the id of the processor the worker
holds; the re-run goes to whichever worker is free first. Key lines of output::

    Worker 2 processing problematic_image (attempt 1)
    WARN: Detected unhealthy error: processor_crash. Worker will be replaced.
    tasker_aio: replacing a worker after an unhealthy error: RuntimeError('processor_crash')
    INFO: Destroying ImageProcessor 2
    INFO: Creating ImageProcessor 4
    Worker 3 processing problematic_image (attempt 2)
    Problematic Image Task Completed: problematic_image_processed.jpg
    Broken Image Task Failed: max retries exceeded: processor_crash (2 attempts)
    Active Workers: 2
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tasker_aio import Config, MaxRetriesExceededError, TaskManager

_ids = itertools.count(1)


@dataclass
class ImageProcessor:
    """A connection to an image processing service."""

    id: int


def create_image_processor() -> ImageProcessor:
    processor = ImageProcessor(id=next(_ids))
    print(f"INFO: Creating ImageProcessor {processor.id}")
    return processor


def destroy_image_processor(processor: ImageProcessor) -> None:
    print(f"INFO: Destroying ImageProcessor {processor.id}")


def check_image_processor_health(error: BaseException) -> bool:
    """A ``processor_crash`` means the processor is broken; other errors are task errors."""
    if str(error) == "processor_crash":
        print(f"WARN: Detected unhealthy error: {error}. Worker will be replaced.")
        return False
    return True


attempts: Counter[str] = Counter()  # attempts per image, across workers


def image_task(image: str, crashes: int) -> Callable[[ImageProcessor], Awaitable[str]]:
    """A task that crashes its processor on its first ``crashes`` attempts."""

    async def process(processor: ImageProcessor) -> str:
        attempts[image] += 1
        print(f"Worker {processor.id} processing {image} (attempt {attempts[image]})")
        await asyncio.sleep(0.05)  # simulate some work
        if attempts[image] <= crashes:
            raise RuntimeError("processor_crash")  # check_health says: unhealthy
        return f"{image}_processed.jpg"

    return process


async def main() -> None:
    # Show the library's own warning about the replacement in line with the prints.
    logging.basicConfig(format="%(name)s: %(message)s", stream=sys.stdout)
    print("--- Intermediate Usage: Image Processing ---")
    config = Config(
        on_create=create_image_processor,
        on_destroy=destroy_image_processor,
        worker_count=2,
        resource_pool_size=1,  # processor 1 stays idle in the pool, for run_task()
        check_health=check_image_processor_health,
        max_retries=1,
        burst_interval=None,  # no burst workers, so the processor ids are reproducible
    )
    async with TaskManager[ImageProcessor, str](config) as manager:
        print("\nQueueing a task that crashes its worker once...")
        try:
            result = await manager.queue_task(image_task("problematic_image", crashes=1))
        except MaxRetriesExceededError as exc:
            print(f"Problematic Image Task Failed: {exc}")
        else:
            print(f"Problematic Image Task Completed: {result}")

        print("\nQueueing a task that crashes every worker it runs on...")
        try:
            result = await manager.queue_task(image_task("broken_image", crashes=99))
        except MaxRetriesExceededError as exc:
            print(f"Broken Image Task Failed: {exc} ({len(exc.errors)} attempts)")
        else:
            print(f"Broken Image Task Completed: {result}")

        stats = manager.stats()
        print(f"\nActive Workers: {stats.active_workers}")
        print(f"Available Resources: {stats.available_resources}")
        print("Shutting down...")


if __name__ == "__main__":
    asyncio.run(main())
