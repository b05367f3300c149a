"""The exception tree of tasker_aio.

Every error the library raises on its own account derives from :class:`TaskerError`::

    TaskerError
    ├── ConfigError (also ValueError)   invalid Config or backoff parameters
    ├── ManagerStoppedError             submission after stop()/kill(), or killed while pending
    ├── MaxRetriesExceededError         a task failed on its last allowed attempt
    ├── ResourceCreationError           on_create failed at start-up or for run_task
    └── QueueFullError                  a non-blocking submission found its queue full

A task's own exception reaches its caller unchanged when the task ran once and failed
healthily; every other failure of a re-run task is a MaxRetriesExceededError.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ManagerStoppedError",
    "MaxRetriesExceededError",
    "QueueFullError",
    "ResourceCreationError",
    "TaskerError",
]


class TaskerError(Exception):
    """Base class of every error raised by tasker_aio itself."""


class ConfigError(TaskerError, ValueError):
    """A configuration value is invalid; the message names the field and the value."""


class ManagerStoppedError(TaskerError):
    """The manager is shutting down or was killed before the task could complete."""


class QueueFullError(TaskerError):
    """A non-blocking submission found its queue at ``max_queue_size``."""


class ResourceCreationError(TaskerError):
    """``on_create`` failed; ``__cause__`` is the original exception."""


class MaxRetriesExceededError(TaskerError):
    """A task failed and has no retries left.

    Attributes:
        errors: every attempt's exception, oldest first; ``__cause__`` is the last one.
    """

    errors: tuple[BaseException, ...]

    def __init__(self, message: str, errors: tuple[BaseException, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors
