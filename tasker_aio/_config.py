"""Config and its validation."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic

from ._backoff import exponential_backoff
from ._exceptions import ConfigError
from ._metrics import new_collector
from ._types import Logger, MetricsCollector, R, TaskTracer

__all__ = ["Config", "Settings", "resolve"]


@dataclass(frozen=True, kw_only=True)
class Config(Generic[R]):
    """How a :class:`~tasker_aio.TaskManager` creates resources, runs and scales.

    Attributes:
        on_create: makes one resource; sync or async.
        on_destroy: releases one resource; sync or async. Runs shielded; errors are logged.
        worker_count: base workers, >= 1. Each holds one resource.
        max_worker_count: base + burst workers at most; None means ``2 * worker_count``.
        resource_pool_size: idle resources kept for :meth:`TaskManager.run_task`; None
            means ``worker_count``, 0 means no pool.
        check_health: ``exc -> bool``; False marks the worker's resource broken (it is
            replaced and the task re-run). None: every error is healthy.
        max_retries: re-runs after unhealthy failures; 0 = never.
        task_retries: default re-runs after healthy failures; 0 = never.
        retry_backoff: ``attempt -> seconds`` before a healthy re-run; None means
            :func:`~tasker_aio.exponential_backoff`.
        burst_interval: seconds between scaling decisions; None disables bursting.
        max_queue_size: bound of each queue; 0 = unbounded.
        logger: where the manager logs (the stdlib ``logging`` call style: a
            ``logging.Logger`` or a structlog logger); None means
            ``logging.getLogger("tasker_aio")``.
        collector: receives every task event and reports ``metrics()``; None means
            :func:`~tasker_aio.new_collector`.
        on_reset: runs after every task on the resource that ran it (a worker's or a
            pool resource), success or failure, before its next use; sync or async. If
            it raises, the resource is destroyed and replaced; the task's answer stands.
        check_resource: ``resource -> bool`` (sync or async): is it still usable? False
            or an exception: destroy and replace it. Asked before a task on a resource
            idle for ``check_idle_after`` seconds, after a task fails on it (a failed
            check makes the failure unhealthy), on every other resource after any
            unhealthy failure, and every ``check_interval`` seconds on idle ones.
        check_idle_after: seconds idle after which a resource is checked before its next
            task; 0 checks before every task, None never before a task.
        check_interval: seconds between checks of idle resources (a keepalive); None
            means no keepalive. Needs ``check_resource``.
        max_resource_age: seconds after which a resource is destroyed and replaced
            between two tasks (or while idle); None means never.
        max_resources: a hard cap on live resources of every kind at once (workers,
            pool, run_task temporaries, replacements being created, resources being
            destroyed); None means no cap beyond the worker and pool sizes.
        burst_idle_timeout: seconds a burst worker must be idle before it is retired;
            None means ``max(2 * burst_interval, 0.1)``.
        create_backoff: ``attempt -> seconds`` between ``on_create`` retries (attempt 1
            after the first failure); None means 50 ms doubling to 2 s.
        destroy_timeout: seconds after which an ``on_destroy`` still running is
            abandoned (logged with the resource) and its slot freed, so that shutdown
            stays bounded; None waits for it.
        tracer: follows each task from admission to answer (a :class:`TaskTracer`, such
            as ``tasker_aio.otel.tracer()``); None traces nothing, at no cost.
    """

    on_create: Callable[[], Awaitable[R] | R]
    on_destroy: Callable[[R], Awaitable[None] | None]
    worker_count: int
    max_worker_count: int | None = None
    resource_pool_size: int | None = None
    check_health: Callable[[BaseException], bool] | None = None
    max_retries: int = 3
    task_retries: int = 0
    retry_backoff: Callable[[int], float] | None = None
    burst_interval: float | None = 0.1
    max_queue_size: int = 0
    logger: Logger | None = None
    collector: MetricsCollector | None = None
    on_reset: Callable[[R], Awaitable[None] | None] | None = None
    check_resource: Callable[[R], Awaitable[bool] | bool] | None = None
    check_idle_after: float | None = 1.0
    check_interval: float | None = None
    max_resource_age: float | None = None
    max_resources: int | None = None
    burst_idle_timeout: float | None = None
    create_backoff: Callable[[int], float] | None = None
    destroy_timeout: float | None = None
    tracer: TaskTracer | None = None


@dataclass(frozen=True, slots=True)
class Settings(Generic[R]):
    """A validated Config with every default filled in."""

    on_create: Callable[[], Any]
    on_destroy: Callable[[R], Any]
    worker_count: int
    max_worker_count: int
    resource_pool_size: int
    check_health: Callable[[BaseException], bool] | None
    max_retries: int
    task_retries: int
    retry_backoff: Callable[[int], float]
    burst_interval: float | None
    max_queue_size: int
    logger: Logger
    collector: MetricsCollector
    on_reset: Callable[[R], Any] | None
    check_resource: Callable[[R], Any] | None
    check_idle_after: float | None
    check_interval: float | None
    max_resource_age: float | None
    max_resources: int | None  # None: no cap
    burst_idle_timeout: float | None
    create_backoff: Callable[[int], float] | None
    destroy_timeout: float | None
    tracer: TaskTracer | None

    @property
    def cares_for_resources(self) -> bool:
        """Whether any hook or rule runs between tasks (else the worker skips that step)."""
        return (
            self.on_reset is not None
            or self.check_resource is not None
            or self.max_resource_age is not None
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(config: Config[Any], name: str, low: int, what: str) -> int:
    value = getattr(config, name)
    if not _is_int(value) or value < low:
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _seconds(config: Config[Any], name: str, *, zero: bool) -> float | None:
    """A field of seconds: None, or a finite number > 0 (>= 0 if ``zero``)."""
    value = getattr(config, name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0 <= value < math.inf if zero else 0 < value < math.inf)
    ):
        what = ">= 0" if zero else "> 0"
        raise ConfigError(f"{name} must be a number of seconds {what} or None, got {value!r}")
    return float(value)


def _hook(config: Config[Any], name: str, *, sync: bool) -> Any:
    """A callable field (or None); ``sync`` ones may not be async functions."""
    value = getattr(config, name)
    if value is None:
        return None
    if not callable(value):
        raise ConfigError(f"{name} must be callable or None, got {value!r}")
    if sync and inspect.iscoroutinefunction(value):
        raise ConfigError(
            f"{name} must be a plain function returning at once (the manager calls it"
            f" between two steps), got the async function {value!r}"
        )
    return value


def _has_methods(obj: object, names: tuple[str, ...]) -> bool:
    return all(callable(getattr(obj, name, None)) for name in names)


def resolve(config: Config[R]) -> Settings[R]:
    """Validate ``config`` and fill in its defaults.

    Raises:
        ConfigError: the first invalid field, named with its value.
    """
    if not isinstance(config, Config):
        raise ConfigError(f"config must be a tasker_aio.Config, got {config!r}")
    workers = getattr(config, "worker_count", None)
    if not _is_int(workers) or workers <= 0:  # type: ignore[operator]
        raise ConfigError("worker count must be positive")
    if not callable(getattr(config, "on_create", None)):
        raise ConfigError("on_create function is required")
    if not callable(getattr(config, "on_destroy", None)):
        raise ConfigError("on_destroy function is required")

    max_workers = 2 * config.worker_count
    if config.max_worker_count is not None:
        max_workers = _count(
            config,
            "max_worker_count",
            config.worker_count,
            f"an int >= worker_count ({config.worker_count})",
        )
    cap = None
    if config.max_resources is not None:
        cap = _count(
            config,
            "max_resources",
            config.worker_count,
            f"an int >= worker_count ({config.worker_count}) or None",
        )
    if config.resource_pool_size is not None:
        pool_size = _count(config, "resource_pool_size", 0, "an int >= 0")
        if cap is not None and config.worker_count + pool_size > cap:
            raise ConfigError(
                f"worker_count ({config.worker_count}) + resource_pool_size ({pool_size})"
                f" must not exceed max_resources ({cap}): they are all created at start"
            )
    else:  # the pool adds worker_count resources, as far as the cap leaves room
        pool_size = config.worker_count
        if cap is not None:
            pool_size = min(pool_size, cap - config.worker_count)
    max_retries = _count(config, "max_retries", 0, "an int >= 0")
    task_retries = _count(config, "task_retries", 0, "an int >= 0")
    interval = config.burst_interval
    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not 0 < interval < math.inf
    ):
        raise ConfigError(
            f"burst_interval must be a positive number of seconds or None, got {interval!r}"
        )
    queue_size = _count(config, "max_queue_size", 0, "an int >= 0")
    check_health = _hook(config, "check_health", sync=True)
    retry_backoff = _hook(config, "retry_backoff", sync=True)
    create_backoff = _hook(config, "create_backoff", sync=True)
    on_reset = _hook(config, "on_reset", sync=False)
    check_resource = _hook(config, "check_resource", sync=False)
    check_idle_after = _seconds(config, "check_idle_after", zero=True)
    check_interval = _seconds(config, "check_interval", zero=False)
    if check_interval is not None and check_resource is None:
        raise ConfigError(
            f"check_interval ({check_interval!r}) needs check_resource: the keepalive"
            " checks idle resources with it, and there is none"
        )
    max_resource_age = _seconds(config, "max_resource_age", zero=False)
    burst_idle_timeout = _seconds(config, "burst_idle_timeout", zero=True)
    destroy_timeout = _seconds(config, "destroy_timeout", zero=True)
    logger = config.logger
    if logger is not None and not _has_methods(logger, ("debug", "info", "warning", "error")):
        raise ConfigError(f"logger must have debug/info/warning/error methods, got {logger!r}")
    collector = config.collector
    collector_methods = (
        "record_arrival",
        "record_completion",
        "record_failure",
        "record_retry",
        "metrics",
    )
    if collector is not None and not _has_methods(collector, collector_methods):
        raise ConfigError(
            f"collector must implement the MetricsCollector protocol, got {collector!r}"
        )
    tracer = config.tracer
    if tracer is not None and not _has_methods(tracer, ("begin", "enter", "leave", "end")):
        raise ConfigError(f"tracer must implement the TaskTracer protocol, got {tracer!r}")
    return Settings(
        on_create=config.on_create,
        on_destroy=config.on_destroy,
        worker_count=config.worker_count,
        max_worker_count=max_workers,
        resource_pool_size=pool_size,
        check_health=check_health,
        max_retries=max_retries,
        task_retries=task_retries,
        retry_backoff=retry_backoff or exponential_backoff(),
        burst_interval=None if interval is None else float(interval),
        max_queue_size=queue_size,
        logger=logger if logger is not None else logging.getLogger("tasker_aio"),
        collector=collector if collector is not None else new_collector(),
        on_reset=on_reset,
        check_resource=check_resource,
        check_idle_after=check_idle_after,
        check_interval=check_interval,
        max_resource_age=max_resource_age,
        max_resources=cap,
        burst_idle_timeout=burst_idle_timeout,
        create_backoff=create_backoff,
        destroy_timeout=destroy_timeout,
        tracer=tracer,
    )
