"""Workers over time under a load step: ``python -m benchmarks.load_step [--plot]``.

One base worker, at most four; tasks of 20 ms arrive at 25/s (half of one worker's
capacity), then at 150/s (three workers' worth) for two seconds, then at 25/s again.
Every 250 ms it prints the arrival rate offered, the workers (base + burst), the queue,
and the windowed rates the burst coroutine sees. The table in README.md comes from here;
``--plot`` draws the same run (needs matplotlib). ``python -m benchmarks`` runs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from tasker_aio import Config, TaskManager, new_collector

__all__ = ["PHASES", "TASK_SECONDS", "Sample", "main", "render", "run", "thin"]

TASK_SECONDS = 0.02
PHASES = ((1.0, 25.0), (2.0, 150.0), (2.0, 25.0))  # (seconds, arrivals per second)
_TAIL = 1.5  # seconds of no arrivals after the last phase, while the burst winds down


@dataclass(frozen=True)
class Sample:
    """What the manager reported at one moment of the load step."""

    t: float  # seconds since the first arrival
    offered: float  # arrivals per second the driver was offering
    base: int  # base workers
    burst: int  # burst workers
    queued: int
    arrivals: float  # the collector's windowed arrival rate
    done: float  # the collector's windowed completion rate


async def run(sample_every: float) -> list[Sample]:
    """Drive the load step, sampling the manager every ``sample_every`` seconds."""

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
    samples: list[Sample] = []
    async with TaskManager[object, None](config) as manager:
        start = time.monotonic()
        offered = PHASES[0][1]

        async def sample() -> None:
            while True:
                stats, metrics = manager.stats(), manager.metrics()
                samples.append(
                    Sample(
                        t=time.monotonic() - start,
                        offered=offered,
                        base=stats.base_workers,
                        burst=stats.burst_workers,
                        queued=stats.queued_tasks,
                        arrivals=metrics.task_arrival_rate,
                        done=metrics.task_completion_rate,
                    )
                )
                await asyncio.sleep(sample_every)

        sampler = asyncio.create_task(sample())
        pending: list[asyncio.Future[None]] = []
        for seconds, rate in (*PHASES, (_TAIL, 0.0)):
            offered = rate
            phase_end = time.monotonic() + seconds
            while time.monotonic() < phase_end:
                if rate:
                    pending.append(manager.submit(work))
                await asyncio.sleep(1 / rate if rate else 0.05)
        await asyncio.gather(*pending)
        sampler.cancel()
    return samples


def thin(samples: list[Sample], every: float) -> list[Sample]:
    """The samples at least ``every`` seconds apart, for a table of readable length."""
    kept: list[Sample] = []
    for sample in samples:
        if not kept or sample.t - kept[-1].t >= every - 1e-3:
            kept.append(sample)
    return kept


def render(samples: list[Sample]) -> str:
    """The run as a Markdown table, a bar of ``#`` (base) and ``+`` (burst) per row."""
    lines = [
        "|   t (s) | offered/s | workers (base+burst) | queued | arrivals/s | done/s |",
        "|--------:|----------:|:---------------------|-------:|-----------:|-------:|",
    ]
    for s in samples:
        bar = "#" * s.base + "+" * s.burst
        lines.append(
            f"| {s.t:7.2f} | {s.offered:9.0f} | {bar:<4} {s.base}+{s.burst:<13} | {s.queued:6d} "
            f"| {s.arrivals:10.0f} | {s.done:6.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--every", type=float, default=0.25, help="seconds between table rows")
    parser.add_argument(
        "--plot", action="store_true", help="also draw it to benchmarks/results/load_step.png"
    )
    parser.add_argument(
        "--docs-images", action="store_true", help="with --plot, also to docs/images/"
    )
    args = parser.parse_args()
    if args.plot:
        from . import plots  # fails here, before the run, if matplotlib is missing

        plots.require_matplotlib()
    # Sampled finer than printed, so the picture shows each change of workers.
    samples = asyncio.run(run(min(args.every, 0.05)))
    print(render(thin(samples, args.every)))
    if args.plot:
        folders = plots.folders(args.docs_images)
        for path in plots.write_load_step(samples, folders):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
