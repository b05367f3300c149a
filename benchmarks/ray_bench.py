"""The Ray backend's costs, as ratios within one run: ``python -m benchmarks.ray_bench``.

Opt-in (needs ``pip install -e ".[ray]"``); starts its own local Ray on 127.0.0.1.

1. **Per call**: a trivial actor method (``async def echo(x): return x``) awaited
   - raw: ``await handle.echo.remote(x)`` on the actor handles themselves;
   - proxy: ``await proxy.echo(x)`` (the ActorProxy alone, no manager);
   - tasker_aio: ``await manager.queue_task(lambda a: a.echo(x))``;
   all on the same actors (the manager's), one caller per actor (closed loop), modes
   interleaved and their order rotated each repetition. The target is tasker/raw <= 1.1.
2. **Replacing a killed actor**: the actor of a one-worker manager is SIGKILLed while
   idle, then one task is queued: its time covers the failure, destroying the dead actor,
   creating a new one and the re-run. Against it: creating one actor and waiting for it.
3. **Scaling 1 -> 4 actors under load**: 1 base worker, at most 4, ``burst_interval``
   50 ms; 200 tasks of 20 ms are queued at once; the time until 4 actors serve. Against
   it: the same creation time as above, and the drain time with 4 fixed actors.

Results go to stdout (and ``benchmarks/results/ray.json``); progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # after the variables above: Ray reads them on import

from tasker_aio import Config, TaskManager
from tasker_aio.ray import ActorProxy, actor_config

RESULTS = Path(__file__).parent / "results" / "ray.json"
_START = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


class Echo:
    """The benchmark actor."""

    async def echo(self, value: int) -> int:
        return value

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def pid(self) -> int:
        return os.getpid()


def echo(value: int) -> Callable[[ActorProxy], Awaitable[int]]:
    """A task calling ``Echo.echo(value)``."""
    return lambda actor: actor.echo(value)


def tracked(config: Config[ActorProxy]) -> tuple[Config[ActorProxy], list[ActorProxy]]:
    """The config, recording every proxy it creates (to reach the same actors raw)."""
    created: list[ActorProxy] = []
    on_create = config.on_create

    async def create() -> ActorProxy:
        proxy = on_create()
        if inspect.isawaitable(proxy):
            proxy = await proxy
        assert isinstance(proxy, ActorProxy)
        created.append(proxy)
        return proxy

    return dataclasses.replace(config, on_create=create), created


async def closed_loop(
    callers: int, calls: int, call: Callable[[int, int], Awaitable[Any]]
) -> float:
    """Seconds per call with ``callers`` callers each making ``calls`` calls in turn."""

    async def caller(index: int) -> None:
        for n in range(calls):
            await call(index, n)

    started = time.perf_counter()
    await asyncio.gather(*(caller(index) for index in range(callers)))
    return (time.perf_counter() - started) / (callers * calls)


async def per_call(actors: int, calls: int, reps: int) -> dict[str, Any]:
    """Section 1: raw vs proxy vs tasker_aio on the same actors."""
    config, created = tracked(actor_config(Echo, worker_count=actors, burst_interval=None))
    samples: dict[str, list[float]] = {"raw": [], "proxy": [], "tasker_aio": []}
    async with TaskManager[ActorProxy, int](config) as manager:
        handles = [proxy.handle for proxy in created]

        async def raw(index: int, n: int) -> Any:
            return await handles[index].echo.remote(n)

        async def proxy(index: int, n: int) -> Any:
            return await created[index].echo(n)

        async def tasker(index: int, n: int) -> Any:
            return await manager.queue_task(lambda a: a.echo(n))

        modes: dict[str, Callable[[int, int], Awaitable[Any]]] = {
            "raw": raw,
            "proxy": proxy,
            "tasker_aio": tasker,
        }
        names = list(modes)
        for mode in names:  # warm up every path once
            await closed_loop(actors, 20, modes[mode])
        for rep in range(reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for mode in order:
                samples[mode].append(await closed_loop(actors, calls, modes[mode]))
            progress(f"per call: rep {rep + 1}/{reps}")
    medians = {mode: statistics.median(values) for mode, values in samples.items()}
    return {
        "actors": actors,
        "calls_per_caller": calls,
        "reps": reps,
        "us_per_call": {mode: value * 1e6 for mode, value in medians.items()},
        "us_per_call_min": {mode: min(values) * 1e6 for mode, values in samples.items()},
        "ratio_tasker_to_raw": medians["tasker_aio"] / medians["raw"],
        "ratio_proxy_to_raw": medians["proxy"] / medians["raw"],
    }


async def create_one() -> float:
    """Seconds to create one Echo actor and see it ready."""
    remote = ray.remote(Echo)
    started = time.perf_counter()
    handle: Any = remote.remote()
    await handle.__ray_ready__.remote()
    elapsed = time.perf_counter() - started
    ray.kill(handle)
    return elapsed


async def replacement(reps: int) -> dict[str, Any]:
    """Section 2: a killed idle actor, then one task: failure, replacement, re-run."""
    creations: list[float] = []
    replacements: list[float] = []
    config = actor_config(Echo, worker_count=1, burst_interval=None, max_retries=1)
    async with TaskManager[ActorProxy, int](config) as manager:
        for rep in range(reps):
            creations.append(await create_one())
            pid = await manager.queue_task(lambda a: a.pid())
            os.kill(pid, signal.SIGKILL)
            started = time.perf_counter()
            assert await manager.queue_task(echo(rep)) == rep
            replacements.append(time.perf_counter() - started)
            progress(f"replacement: rep {rep + 1}/{reps}")
    creation, replaced = statistics.median(creations), statistics.median(replacements)
    return {
        "reps": reps,
        "create_actor_s": creation,
        "replace_killed_actor_s": replaced,
        "ratio_replace_to_create": replaced / creation,
    }


async def scale_up(tasks: int, task_seconds: float, reps: int) -> dict[str, Any]:
    """Section 3: time until 4 actors serve a backlog that starts with 1."""
    to_four: list[float] = []
    burst_drain: list[float] = []
    fixed_drain: list[float] = []
    for rep in range(reps):
        for fixed in (False, True):
            config = actor_config(
                Echo,
                worker_count=4 if fixed else 1,
                max_worker_count=4,
                burst_interval=0.05,
            )
            async with TaskManager[ActorProxy, None](config) as manager:
                started = time.perf_counter()
                futures = [
                    manager.queue_task_async(lambda a: a.sleep(task_seconds)) for _ in range(tasks)
                ]
                if not fixed:
                    # No event says "a worker is ready": poll, 5 ms apart.
                    while manager.stats().active_workers < 4:  # noqa: ASYNC110
                        await asyncio.sleep(0.005)
                    to_four.append(time.perf_counter() - started)
                await asyncio.gather(*futures)
                (fixed_drain if fixed else burst_drain).append(time.perf_counter() - started)
        progress(f"scale up: rep {rep + 1}/{reps}")
    return {
        "reps": reps,
        "tasks": tasks,
        "task_s": task_seconds,
        "seconds_to_4_actors": statistics.median(to_four),
        "drain_s_bursting": statistics.median(burst_drain),
        "drain_s_4_fixed": statistics.median(fixed_drain),
        "ratio_drain_bursting_to_fixed": statistics.median(burst_drain)
        / statistics.median(fixed_drain),
    }


def report(results: dict[str, Any]) -> None:
    replace, scale = results["replacement"], results["scale_up"]
    print(f"Ray {ray.__version__}, {os.cpu_count()} cores, local Ray on 127.0.0.1")
    for key in ("per_call_1", "per_call"):
        call = results[key]
        us, lowest = call["us_per_call"], call["us_per_call_min"]
        print(f"\nPer call, {call['actors']} actor(s), one closed-loop caller each (median)")
        print(f"{'path':<12} {'us/call':>9} {'min':>9} {'x raw':>7}")
        for mode in ("raw", "proxy", "tasker_aio"):
            ratio = us[mode] / us["raw"]
            print(f"{mode:<12} {us[mode]:>9.0f} {lowest[mode]:>9.0f} {ratio:>7.2f}")
        target = "met" if call["ratio_tasker_to_raw"] <= 1.1 else "MISSED"
        print(f"target tasker_aio/raw <= 1.10: {call['ratio_tasker_to_raw']:.2f} ({target})")
    print("\nReplacing a SIGKILLed idle actor (one task: failure + destroy + create + re-run)")
    print(f"create one actor:        {replace['create_actor_s'] * 1e3:8.0f} ms")
    print(f"replace + re-run:        {replace['replace_killed_actor_s'] * 1e3:8.0f} ms")
    print(f"ratio to one creation:   {replace['ratio_replace_to_create']:8.2f}")
    print(f"\nScaling 1 -> 4 actors: {scale['tasks']} tasks of {scale['task_s'] * 1e3:.0f} ms")
    print(f"time to 4 actors:        {scale['seconds_to_4_actors'] * 1e3:8.0f} ms")
    print(
        f"  in actor creations:    {scale['seconds_to_4_actors'] / replace['create_actor_s']:8.2f}"
    )
    print(f"drain, bursting 1->4:    {scale['drain_s_bursting'] * 1e3:8.0f} ms")
    print(f"drain, 4 from the start: {scale['drain_s_4_fixed'] * 1e3:8.0f} ms")
    print(f"ratio:                   {scale['ratio_drain_bursting_to_fixed']:8.2f}")


async def run(quick: bool) -> dict[str, Any]:
    return {
        # Many repetitions: one call is ~2 ms of Ray, whose jitter dwarfs tasker_aio's
        # ~10-20 us, so a median of few repetitions swings by 10-20% on a busy machine.
        "per_call_1": await per_call(
            actors=1, calls=100 if quick else 500, reps=3 if quick else 15
        ),
        "per_call": await per_call(actors=4, calls=50 if quick else 250, reps=3 if quick else 11),
        "replacement": await replacement(reps=2 if quick else 5),
        "scale_up": await scale_up(tasks=200, task_seconds=0.02, reps=1 if quick else 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tasker_aio's Ray backend costs")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        results = asyncio.run(run(args.quick))
    finally:
        ray.shutdown()
    report(results)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"ray": ray.__version__, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
