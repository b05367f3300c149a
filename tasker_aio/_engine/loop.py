"""The manager's event loop: is a call on it (the one use of asyncio's internals), and
getting there from another thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from functools import partial
from threading import get_ident
from typing import Any, TypeVar

__all__ = ["call_in", "hop", "loop_thread", "running_loop"]

T = TypeVar("T")


def loop_thread(loop: asyncio.AbstractEventLoop) -> Callable[[], int | None]:
    """Return ``thread()``: the id of the thread running ``loop`` now, None while stopped.

    A call is on the manager's loop when ``thread() == threading.get_ident()``: a thread
    runs one loop at a time, so this asks "is ``loop`` the running loop?" without
    ``asyncio.get_running_loop()``, which makes a ``getpid()`` system call on every call
    on CPython 3.11 (a tenth of a submission's cost). asyncio's own loops keep that id
    in the private ``_thread_id``, read here with no Python frame; any other loop (uvloop,
    or an asyncio without that attribute) is asked through its public API: the thread
    that called this function, while ``loop.is_running()``.

    Call it from the loop's thread, while it runs.
    """
    if isinstance(loop, asyncio.BaseEventLoop) and getattr(loop, "_thread_id", None) == get_ident():
        return partial(getattr, loop, "_thread_id")
    thread = get_ident()
    is_running = loop.is_running

    def thread_of() -> int | None:
        return thread if is_running() else None

    return thread_of


def running_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's running event loop, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def hop(
    loop: asyncio.AbstractEventLoop | None, fn: Callable[[], Coroutine[Any, Any, T]]
) -> T:
    """Await ``fn()`` on ``loop``: here if it is this thread's loop, else in its thread.

    Lets a coroutine method of the manager be awaited from another thread's event loop:
    the coroutine runs on the manager's loop, this one waits for it (and cancelling the
    wait cancels it there).
    """
    if loop is None or running_loop() is loop or not loop.is_running():
        return await fn()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(), loop))


def call_in(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], T]) -> T:
    """``fn()`` in ``loop``'s thread, waiting for it, if called from another thread.

    For reads that must see a consistent state (``stats()``, ``metrics()``): from a
    monitoring thread they run between two steps of the loop. Called on the loop (or
    with the loop not running) it is a plain call.
    """
    if loop is None or not loop.is_running() or running_loop() is loop:
        return fn()
    answer: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        try:
            answer.set_result(fn())
        except BaseException as exc:
            answer.set_exception(exc)

    loop.call_soon_threadsafe(call)
    return answer.result()
