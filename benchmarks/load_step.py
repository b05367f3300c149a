"""Workers over time under a load step: ``python -m benchmarks.load_step``.

One base worker, at most four; tasks of 20 ms arrive at 25/s (half of one worker's
capacity), then at 150/s (three workers' worth) for two seconds, then at 25/s again.
Every 250 ms it prints the arrival rate offered, the workers (base + burst), the queue,
and the windowed rates the burst coroutine sees. The table in README.md comes from here.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from tasker_aio import Config, TaskManager, new_collector

TASK_SECONDS = 0.02
PHASES = ((1.0, 25.0), (2.0, 150.0), (2.0, 25.0))  # (seconds, arrivals per second)


async def run(sample_every: float) -> list[tuple[float, float, int, int, int, float, float]]:
    """Drive the load step; return (t, offered rate, base, burst, queued, in, out) rows."""

    async def work(resource: object) -> None:
        await asyncio.sleep(TASK_SECONDS)

    config: Config[object] = Config(
        on_create=object,
        on_destroy=lambda resource: None,
        worker_count=1,
        max_worker_count=4,
        resource_pool_size=0,
        burst_interval=0.05,
        collector=new_collector(window=1.0),
    )
    rows: list[tuple[float, float, int, int, int, float, float]] = []
    async with TaskManager[object, None](config) as manager:
        start = time.monotonic()
        offered = PHASES[0][1]

        async def sample() -> None:
            while True:
                stats, metrics = manager.stats(), manager.metrics()
                rows.append(
                    (
                        time.monotonic() - start, offered, stats.base_workers,
                        stats.burst_workers, stats.queued_tasks,
                        metrics.task_arrival_rate, metrics.task_completion_rate,
                    )
                )  # fmt: skip
                await asyncio.sleep(sample_every)

        sampler = asyncio.create_task(sample())
        pending: list[asyncio.Future[None]] = []
        for seconds, rate in (*PHASES, (1.5, 0.0)):
            offered = rate
            phase_end = time.monotonic() + seconds
            while time.monotonic() < phase_end:
                if rate:
                    pending.append(manager.submit(work))
                await asyncio.sleep(1 / rate if rate else 0.05)
        await asyncio.gather(*pending)
        sampler.cancel()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=0.25, help="seconds between samples")
    args = parser.parse_args()
    rows = asyncio.run(run(args.every))
    print("|   t (s) | offered/s | workers (base+burst) | queued | arrivals/s | done/s |")
    print("|--------:|----------:|:---------------------|-------:|-----------:|-------:|")
    for t, offered, base, burst, queued, arrived, done in rows:
        bar = "#" * base + "+" * burst
        print(
            f"| {t:7.2f} | {offered:9.0f} | {bar:<4} {base}+{burst:<13} | {queued:6d} "
            f"| {arrived:10.0f} | {done:6.0f} |"
        )


if __name__ == "__main__":
    main()
