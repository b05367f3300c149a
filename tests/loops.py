"""Running a test on each event loop the project supports: asyncio's, and uvloop's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factories() -> list[Any]:
    """A pytest param per loop: asyncio's always, uvloop's when it is installed."""
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the bench group CI installs
        return factories
    return [*factories, pytest.param(uvloop.new_event_loop, id="uvloop")]


LOOPS = pytest.mark.parametrize("loop_factory", loop_factories())


def run(loop_factory: LoopFactory, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``main()`` to its end on a fresh loop from ``loop_factory``."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())
