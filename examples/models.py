"""The fake model handles behind the web examples, and the hooks their tests use.

Shared by ``examples/fastapi_app.py`` and ``examples/aiohttp_app.py``; run those as
modules from the repository root (``python -m examples.fastapi_app``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

Prediction = dict[str, int]


class Probe:
    """Hooks for the tests: what the app did, and a gate that holds tasks while it is clear."""

    def __init__(self) -> None:
        self.ran: list[int] = []  # n of each prediction a worker started
        self.finished: list[int] = []  # n of each prediction that ran to completion
        # n of each request whose client went away (or whose handler was cancelled)
        self.disconnected: list[int] = []
        self.gate = asyncio.Event()  # a prediction finishes only once this is set
        self.gate.set()
        self._changed = asyncio.Event()

    def note(self, events: list[int], n: int) -> None:
        events.append(n)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


class Model:
    """A fake model handle: expensive to load, then cheap to call."""

    def __init__(self, ident: int, probe: Probe) -> None:
        self.ident = ident
        self.probe = probe

    async def predict(self, n: int, delay: float) -> Prediction:
        self.probe.note(self.probe.ran, n)
        await self.probe.gate.wait()
        await asyncio.sleep(delay)  # pretend to run inference
        self.probe.note(self.probe.finished, n)
        return {"input": n, "output": n * n, "model": self.ident}


class ModelLoader:
    """Loads and unloads models, keeping the ids of both for the tests to compare."""

    def __init__(self, probe: Probe, load_cost: float = 0.02) -> None:
        self.probe = probe
        self.load_cost = load_cost
        self.loaded: list[int] = []
        self.unloaded: list[int] = []
        self._ids = itertools.count(1)

    async def load(self) -> Model:
        await asyncio.sleep(self.load_cost)  # pretend to read weights
        model = Model(next(self._ids), self.probe)
        self.loaded.append(model.ident)
        return model

    async def unload(self, model: Model) -> None:
        await asyncio.sleep(0)
        self.unloaded.append(model.ident)
