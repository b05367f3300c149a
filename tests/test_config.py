"""Config validation: order, exact messages, named fields."""

from __future__ import annotations

from typing import Any

import pytest

from tasker_aio import Config, ConfigError, TaskManager


def noop() -> None:
    return None


def build(**overrides: Any) -> TaskManager[Any, Any]:
    settings: dict[str, Any] = {"on_create": noop, "on_destroy": lambda r: None, "worker_count": 1}
    settings.update(overrides)
    return TaskManager(Config(**settings))


@pytest.mark.parametrize("count", [0, -1, 1.5, "2", True, None])
def test_worker_count_must_be_positive(count: object) -> None:
    """A worker_count that is not a positive int fails with the exact Go message."""
    with pytest.raises(ConfigError, match="^worker count must be positive$"):
        build(worker_count=count)


@pytest.mark.parametrize("value", [None, 42])
def test_on_create_required(value: object) -> None:
    """A missing or non-callable on_create fails with the exact message."""
    with pytest.raises(ConfigError, match="^on_create function is required$"):
        build(on_create=value)


@pytest.mark.parametrize("value", [None, "close"])
def test_on_destroy_required(value: object) -> None:
    """A missing or non-callable on_destroy fails with the exact message."""
    with pytest.raises(ConfigError, match="^on_destroy function is required$"):
        build(on_destroy=value)


def test_validation_order() -> None:
    """worker_count is checked before on_create, on_create before on_destroy."""
    with pytest.raises(ConfigError, match="worker count"):
        build(worker_count=0, on_create=None, on_destroy=None)
    with pytest.raises(ConfigError, match="on_create"):
        build(on_create=None, on_destroy=None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_worker_count", 1),
        ("max_worker_count", 2.5),
        ("resource_pool_size", -1),
        ("max_retries", -1),
        ("task_retries", -2),
        ("burst_interval", 0),
        ("burst_interval", -0.5),
        ("burst_interval", float("inf")),
        ("max_queue_size", -1),
        ("check_health", "yes"),
        ("retry_backoff", 3),
        ("logger", object()),
        ("collector", object()),
    ],
)
def test_bad_values_name_field_and_value(field: str, value: object) -> None:
    """Every other invalid field raises ConfigError naming the field and the value."""
    with pytest.raises(ConfigError) as caught:
        build(worker_count=2, **{field: value})
    assert field in str(caught.value)
    assert repr(value) in str(caught.value)


def test_config_error_is_value_error() -> None:
    """ConfigError can be caught as ValueError."""
    with pytest.raises(ValueError, match="worker count"):
        build(worker_count=0)


def test_constructing_creates_nothing() -> None:
    """TaskManager(config) validates only: no resource is created."""
    calls: list[int] = []
    manager = build(on_create=lambda: calls.append(1))
    assert calls == []
    assert manager.state == "new"


def test_valid_edge_values() -> None:
    """Zero retries, no pool, no bursting and an unbounded queue are all valid."""
    manager = build(
        worker_count=3, max_worker_count=3, resource_pool_size=0, max_retries=0,
        task_retries=0, burst_interval=None, max_queue_size=0,
    )  # fmt: skip
    assert manager.state == "new"
