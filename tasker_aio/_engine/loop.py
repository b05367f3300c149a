"""Is a call on the manager's event loop? The one place that uses asyncio's internals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from threading import get_ident

__all__ = ["loop_thread", "running_loop"]


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
