"""tasker_aio against asyncpg's own pool on a real PostgreSQL: ``python -m benchmarks.postgres``.

Opt-in and separate from ``python -m benchmarks``; never asserted by the tests. Without
``--dsn`` it starts a throwaway server (``tests/postgres/server.py``: the server
binaries must be installed) and deletes it afterwards. Sections:

``throughput``
    64 closed-loop callers run short queries (``SELECT $1::int``; a one-row
    ``INSERT``) through each system with 8 connections over TCP to 127.0.0.1:

    - asyncpg's pool, ``acquire()`` per query; its release resets the connection (one
      more round trip), as it does by default;
    - asyncpg's pool with ``reset=`` a no-op (only an open transaction is rolled back);
    - tasker_aio ``queue_task``, 8 workers, no pool, no bursting;
    - the same with ``on_reset`` (roll back, then asyncpg's reset query: what the pool
      does on release), with ``check_resource`` (``SELECT 1`` on a connection idle for
      ``check_idle_after`` = 1 s, the default, so never under this load), and with
      both: what asyncpg-pool-equivalent safety costs.

    Each measurement runs on a fresh event loop; only the queries are timed (not
    opening or closing the pool or manager); systems run interleaved, in an order
    rotated each repetition. Reported: throughput (queries/s) and the callers' p50 and
    p99 latency, medians over the repetitions, and each as a ratio to asyncpg's pool
    from the same run.

``restart``
    32 callers run ``SELECT $1::int`` in a loop (a caller whose query failed waits
    10 ms before the next, as a client would); after 1 s, ``pg_ctl restart -m fast``.
    Reported: the errors that reached callers, and how long after the server accepted
    connections again the first 100 ms bucket reached 80% of the median bucket before
    the restart (issue 15's target: within 1 s). Systems: asyncpg's pool; tasker_aio
    without ``check_resource`` (``check_health`` calls connection errors unhealthy,
    ``max_retries=3``); and the same with ``check_resource`` and ``create_backoff``.
    Then the server is restarted while the system sits idle, and 20 calls are made one
    at a time: the errors among them (issue 15's retry storm: every re-run landing on
    another dead connection). Only with the throwaway server: it is restarted.

Results go to stdout and to ``benchmarks/results/postgres.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from examples.postgres_hooks import (
    Connection,
    close_connection,
    connection_usable,
    connector,
    is_connection_error,
    reset_connection,
)
from tasker_aio import Config, TaskManager

from ._common import median, percentile, progress, split
from ._report import environment, table

__all__ = ["main"]

CONNECTIONS = 8
CALLERS = 64
RESTART_CALLERS = 32
ERROR_PAUSE = 0.01  # seconds a caller waits after a failed query
BUCKET = 0.1  # seconds per throughput bucket in the restart section
IDLE_CALLS = 20  # calls made one at a time after a restart while idle
RECOVERY_TARGET = 1.0  # issue 15: full throughput within 1 s of the server accepting
RESULTS = Path(__file__).parent / "results" / "postgres.json"
TABLE = "tasker_bench_rows"

Query = Callable[[Connection, int], Awaitable[object]]
Call = Callable[[Query, int], Awaitable[object]]


async def select(conn: Connection, n: int) -> object:
    """``SELECT $1::int``: one round trip."""
    return await conn.fetchval("SELECT $1::int", n)


async def insert(conn: Connection, n: int) -> object:
    """A one-row ``INSERT``: one round trip and a (non-durable, fsync=off) WAL write."""
    return await conn.execute(f"INSERT INTO {TABLE} (v) VALUES ($1)", n)


QUERIES: dict[str, Query] = {"select": select, "insert": insert}


# -------------------------------------------------------------------- systems


async def _no_reset(conn: Connection) -> None:
    """asyncpg's pool with this as ``reset`` only rolls back an open transaction."""


@asynccontextmanager
async def asyncpg_pool(dsn: str, *, reset: bool = True) -> AsyncIterator[Call]:
    """asyncpg's pool of ``CONNECTIONS``; ``reset=False`` makes its release cheap."""
    options: dict[str, Any] = {} if reset else {"reset": _no_reset}
    pool = await asyncpg.create_pool(
        dsn,
        min_size=CONNECTIONS,
        max_size=CONNECTIONS,
        server_settings={"application_name": "bench-asyncpg"},
        **options,
    )
    try:

        async def call(query: Query, n: int) -> object:
            async with pool.acquire() as conn:
                return await query(conn, n)

        yield call
    finally:
        await pool.close()


@asynccontextmanager
async def tasker(dsn: str, **fields: Any) -> AsyncIterator[Call]:
    """tasker_aio with ``CONNECTIONS`` workers, each holding a connection; no pool."""
    settings: dict[str, Any] = {
        "worker_count": CONNECTIONS,
        "max_worker_count": CONNECTIONS,
        "resource_pool_size": 0,
        "burst_interval": None,
        **fields,
    }
    config: Config[Connection] = Config(
        on_create=connector(dsn, "bench-tasker"), on_destroy=close_connection, **settings
    )
    async with TaskManager[Connection, object](config) as manager:

        async def call(query: Query, n: int) -> object:
            return await manager.queue_task(lambda conn: query(conn, n))

        yield call


@dataclass(frozen=True)
class System:
    """A way to run queries on ``CONNECTIONS`` connections."""

    key: str
    label: str
    open: Callable[[str], AbstractAsyncContextManager[Call]]


BASELINE = "asyncpg"
THROUGHPUT_SYSTEMS = (
    System(BASELINE, "asyncpg pool (reset on release)", asyncpg_pool),
    System(
        "asyncpg.noreset",
        "asyncpg pool, reset=no-op",
        lambda dsn: asyncpg_pool(dsn, reset=False),
    ),
    System("tasker", "tasker_aio queue_task", tasker),
    System(
        "tasker.reset",
        "tasker_aio + on_reset",
        lambda dsn: tasker(dsn, on_reset=reset_connection),
    ),
    System(
        "tasker.check",
        "tasker_aio + check_resource",
        lambda dsn: tasker(dsn, check_resource=connection_usable),
    ),
    System(
        "tasker.both",
        "tasker_aio + on_reset + check_resource",
        lambda dsn: tasker(dsn, on_reset=reset_connection, check_resource=connection_usable),
    ),
)
RESTART_SYSTEMS = (
    System(BASELINE, "asyncpg pool", asyncpg_pool),
    System(
        "tasker.nocheck",
        "tasker_aio, check_health + max_retries=3",
        lambda dsn: tasker(dsn, check_health=lambda exc: not is_connection_error(exc)),
    ),
    System(
        "tasker.check",
        "tasker_aio + check_resource + create_backoff",
        lambda dsn: tasker(
            dsn,
            check_health=lambda exc: not is_connection_error(exc),
            check_resource=connection_usable,
            create_backoff=lambda attempt: min(0.05 * attempt, 0.25),
        ),
    ),
)


# ----------------------------------------------------------------- throughput


@dataclass(frozen=True)
class Sample:
    """One timed run: queries per second and the callers' latencies (seconds)."""

    per_second: float
    p50: float
    p99: float


async def measure(system: System, dsn: str, query: Query, n: int) -> Sample:
    """Time ``n`` queries by ``CALLERS`` closed-loop callers through ``system``."""
    async with system.open(dsn) as call:
        # Every connection prepares the statement before the clock starts.
        await asyncio.gather(*(call(query, i) for i in range(4 * CONNECTIONS)))
        latencies: list[float] = []

        async def caller(count: int) -> None:
            clock = time.perf_counter
            for i in range(count):
                began = clock()
                await call(query, i)
                latencies.append(clock() - began)

        began = time.perf_counter()
        await asyncio.gather(*(caller(count) for count in split(n, CALLERS)))
        elapsed = time.perf_counter() - began
    return Sample(n / elapsed, percentile(latencies, 50), percentile(latencies, 99))


@dataclass
class ThroughputRow:
    """Medians over the repetitions, and ratios to asyncpg's pool from the same run."""

    query: str
    system: str
    label: str
    per_second: float
    p50_ms: float
    p99_ms: float
    throughput_ratio: float = 0.0  # this / asyncpg pool: > 1 is faster
    p50_ratio: float = 0.0  # this / asyncpg pool: < 1 is faster
    p99_ratio: float = 0.0
    samples: list[Sample] = field(default_factory=list)


def run_throughput(systems: Sequence[System], dsn: str, n: int, reps: int) -> list[ThroughputRow]:
    """Every query through every system, ``reps`` times, interleaved and rotated."""
    samples: dict[tuple[str, str], list[Sample]] = {}
    order = [(query, system) for query in QUERIES for system in systems]
    for rep in range(reps):
        shift = rep % len(order)
        for query, system in order[shift:] + order[:shift]:
            progress(f"throughput rep {rep + 1}/{reps}: {query} via {system.label}")
            gc.collect()
            sample = asyncio.run(measure(system, dsn, QUERIES[query], n))
            samples.setdefault((query, system.key), []).append(sample)
    rows = []
    for query in QUERIES:
        for system in systems:
            runs = samples[(query, system.key)]
            rows.append(
                ThroughputRow(
                    query,
                    system.key,
                    system.label,
                    median([s.per_second for s in runs]),
                    1e3 * median([s.p50 for s in runs]),
                    1e3 * median([s.p99 for s in runs]),
                    samples=runs,
                )
            )
    for row in rows:
        base = next(r for r in rows if r.query == row.query and r.system == BASELINE)
        row.throughput_ratio = row.per_second / base.per_second
        row.p50_ratio = row.p50_ms / base.p50_ms
        row.p99_ratio = row.p99_ms / base.p99_ms
    return rows


# -------------------------------------------------------------------- restart


@dataclass
class RestartRow:
    """One system's restart trial(s): medians over the repetitions."""

    system: str
    label: str
    errors: float
    restart_s: float  # pg_ctl restart -m fast, from the call to the server accepting
    first_answer_s: float  # from the server accepting to the first correct answer
    recovery_s: float  # ... to the first bucket at >= 80% of the steady median
    idle_errors: float  # errors in IDLE_CALLS sequential calls after an idle restart
    trials: list[dict[str, float]] = field(default_factory=list)


async def restart_trial(
    system: System, server: Any, before: float, after: float
) -> dict[str, float]:
    """Load ``system``, restart the server, and time the way back."""
    answered: list[float] = []
    errors = 0
    stopping = asyncio.Event()
    async with system.open(server.dsn) as call:

        async def caller() -> None:
            nonlocal errors
            n = 0
            while not stopping.is_set():
                n += 1
                try:
                    await call(select, n)
                except Exception:
                    errors += 1
                    await asyncio.sleep(ERROR_PAUSE)
                else:
                    answered.append(time.monotonic())

        callers = [asyncio.create_task(caller()) for _ in range(RESTART_CALLERS)]
        started = time.monotonic()
        await asyncio.sleep(before)
        began = time.monotonic()
        await asyncio.to_thread(server.restart, "fast")
        accepting = time.monotonic()
        await asyncio.sleep(after)
        stopping.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*callers)

    def buckets(start: float, end: float) -> list[int]:
        counts = [0] * max(1, int((end - start) / BUCKET))
        for at in answered:
            if start <= at < end:
                counts[min(len(counts) - 1, int((at - start) / BUCKET))] += 1
        return counts

    steady = median(buckets(started + 0.3, began))  # after the warm-up
    after_counts = buckets(accepting, accepting + after)
    full = next((i for i, c in enumerate(after_counts) if c >= 0.8 * steady), None)
    first = min((at for at in answered if at >= accepting), default=None)
    return {
        "errors": errors,
        "restart_s": accepting - began,
        "first_answer_s": float("nan") if first is None else first - accepting,
        "recovery_s": float("nan") if full is None else full * BUCKET,
        "steady_per_bucket": steady,
    }


async def idle_restart_trial(system: System, server: Any) -> int:
    """Restart the server while ``system`` is idle; count the errors among the next
    ``IDLE_CALLS`` calls, made one at a time (issue 15's retry storm).
    """
    errors = 0
    async with system.open(server.dsn) as call:
        await asyncio.gather(*(call(select, n) for n in range(2 * CONNECTIONS)))
        await asyncio.to_thread(server.restart, "fast")
        for n in range(IDLE_CALLS):
            try:
                await call(select, n)
            except Exception:
                errors += 1
    return errors


def run_restart(systems: Sequence[System], server: Any, reps: int) -> list[RestartRow]:
    """Every system through ``reps`` restarts, interleaved."""
    trials: dict[str, list[dict[str, float]]] = {}
    for rep in range(reps):
        for system in systems:
            progress(f"restart rep {rep + 1}/{reps}: {system.label}")
            gc.collect()
            trial = asyncio.run(restart_trial(system, server, before=1.0, after=2.0))
            trial["idle_errors"] = asyncio.run(idle_restart_trial(system, server))
            trials.setdefault(system.key, []).append(trial)
    rows = []
    for system in systems:
        runs = trials[system.key]

        def middle(name: str, runs: list[dict[str, float]] = runs) -> float:
            return median([run[name] for run in runs])

        rows.append(
            RestartRow(
                system.key,
                system.label,
                errors=middle("errors"),
                restart_s=middle("restart_s"),
                first_answer_s=middle("first_answer_s"),
                recovery_s=middle("recovery_s"),
                idle_errors=middle("idle_errors"),
                trials=runs,
            )
        )
    return rows


# ------------------------------------------------------------------------ CLI


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def make_table(dsn: str, *, drop: bool = False) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        if not drop:
            await conn.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, v int)")
    finally:
        await conn.close()


def render_throughput(rows: list[ThroughputRow], n: int, reps: int) -> str:
    parts = []
    for query in QUERIES:
        body = [
            [
                r.label,
                r.per_second,
                r.p50_ms,
                r.p99_ms,
                r.throughput_ratio,
                r.p50_ratio,
                r.p99_ratio,
            ]
            for r in rows
            if r.query == query
        ]
        headers = ["system", "queries/s", "p50 ms", "p99 ms", "x pool q/s", "x pool p50"]
        parts.append(
            f"== {query}: {n:,} queries, {CALLERS} closed-loop callers, {CONNECTIONS} "
            f"connections, median of {reps} ==\n" + table([*headers, "x pool p99"], body)
        )
    return "\n\n".join(parts)


def render_restart(rows: list[RestartRow], reps: int) -> str:
    headers = ["system", "errors", "restart s", "first answer s", "80% throughput s", "<= 1 s"]
    body = [
        [
            r.label,
            r.errors,
            r.restart_s,
            r.first_answer_s,
            r.recovery_s,
            "yes" if r.recovery_s <= RECOVERY_TARGET else "no",  # NaN (never): no
            r.idle_errors,
        ]
        for r in rows
    ]
    return (
        f"== restart -m fast under load: {RESTART_CALLERS} callers, {CONNECTIONS} "
        f"connections, median of {reps} ==\n"
        + table([*headers, f"idle: errors in {IDLE_CALLS}"], body)
        + "\n(first answer and 80% throughput: from the moment the server accepted"
        " connections again; issue 15's target is 80% within 1 s. Last column: a restart"
        f" while idle, then {IDLE_CALLS} calls one at a time)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer queries and repetitions")
    parser.add_argument("--dsn", help="an existing server (no restart section); default: own")
    parser.add_argument("--only", action="append", choices=("throughput", "restart"))
    parser.add_argument("--queries", type=int, help="queries per measurement")
    parser.add_argument("--reps", type=int, help="repetitions")
    args = parser.parse_args(argv)
    n = args.queries or (2_000 if args.quick else 10_000)
    reps = args.reps or (3 if args.quick else 5)
    sections = args.only or ["throughput", "restart"]
    notes: list[str] = []
    started = time.perf_counter()
    # The restart section makes connecting fail while the server is down, which the
    # manager and asyncpg's pool log with tracebacks; the table says what reached the
    # callers.
    for noisy in ("tasker_aio", "asyncpg"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    server: Any = None
    dsn = args.dsn
    if dsn is None:
        from tests.postgres.server import PgServer

        progress("starting a throwaway PostgreSQL server")
        server = PgServer.start()
        dsn = server.dsn
    elif "restart" in sections:
        notes.append("no restart section against --dsn: it would restart someone's server")
        sections = [s for s in sections if s != "restart"]
    try:
        env = environment()
        env["versions"] = {
            name: metadata.version(name) for name in ("tasker-aio", "anyio", "asyncpg")
        }
        env["postgres"] = asyncio.run(server_version(dsn))
        asyncio.run(make_table(dsn))
        output: dict[str, Any] = {"env": env, "queries": n, "reps": reps, "notes": notes}
        text: list[str] = []
        if "throughput" in sections:
            rows = run_throughput(THROUGHPUT_SYSTEMS, dsn, n, reps)
            output["throughput"] = [asdict(row) for row in rows]
            text.append(render_throughput(rows, n, reps))
        if "restart" in sections:
            restart_reps = 1 if args.quick else 3
            restart_rows = run_restart(RESTART_SYSTEMS, server, restart_reps)
            output["restart"] = [asdict(row) for row in restart_rows]
            text.append(render_restart(restart_rows, restart_reps))
        asyncio.run(make_table(dsn, drop=True))
    finally:
        if server is not None:
            server.stop()
    header = [
        f"tasker_aio vs asyncpg's pool on PostgreSQL {env['postgres']} "
        f"(commit {env['commit']}, {env['date']})",
        f"{env['python']} on {env['platform']}, {env['cpus']} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        *(f"note: {note}" for note in notes),
    ]
    text.append(f"total time: {time.perf_counter() - started:.0f} s")
    print("\n\n".join(["\n".join(header), *text]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
