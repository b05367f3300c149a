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
from ._types import Logger, MetricsCollector, R

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
        logger: None means ``logging.getLogger("tasker_aio")``.
        collector: None means :func:`~tasker_aio.new_collector`.
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(config: Config[Any], name: str, low: int, what: str) -> int:
    value = getattr(config, name)
    if not _is_int(value) or value < low:
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return int(value)


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
    pool_size = config.worker_count
    if config.resource_pool_size is not None:
        pool_size = _count(config, "resource_pool_size", 0, "an int >= 0")
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
    for name in ("check_health", "retry_backoff"):
        value = getattr(config, name)
        if value is not None and not callable(value):
            raise ConfigError(f"{name} must be callable or None, got {value!r}")
        if inspect.iscoroutinefunction(value):
            raise ConfigError(
                f"{name} must be a plain function returning at once (it is called between"
                f" a task's failure and its answer), got the async function {value!r}"
            )
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
    return Settings(
        on_create=config.on_create,
        on_destroy=config.on_destroy,
        worker_count=config.worker_count,
        max_worker_count=max_workers,
        resource_pool_size=pool_size,
        check_health=config.check_health,
        max_retries=max_retries,
        task_retries=task_retries,
        retry_backoff=config.retry_backoff or exponential_backoff(),
        burst_interval=None if interval is None else float(interval),
        max_queue_size=queue_size,
        logger=logger if logger is not None else logging.getLogger("tasker_aio"),
        collector=collector if collector is not None else new_collector(),
    )
