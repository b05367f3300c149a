"""``python -m tasker_aio demo``: a simulated workload, drawn live in the terminal.

The simulation (:class:`Simulation`, or :func:`simulate`) drives a real
:class:`TaskManager` the way an application would: fake "model handles" that take a
while to load, requests arriving at random (a quiet phase, a burst well above what the
base workers can serve, then quiet again), a few crashes that replace the worker, and a
graceful stop. It reports what it sees through ``stats()`` and ``metrics()`` only, so a
user can copy it. Ctrl-C cuts it short; the summary then tells what ran so far.
"""

from __future__ import annotations

from .cli import build_parser, main
from .screen import Screen
from .simulation import DemoParams, Sample, Simulation, Summary, simulate

__all__ = [
    "DemoParams",
    "Sample",
    "Screen",
    "Simulation",
    "Summary",
    "build_parser",
    "main",
    "simulate",
]
