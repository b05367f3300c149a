"""Benchmarks for tasker_aio against the raw asyncio floor and the peer libraries.

Run ``python -m benchmarks`` (full, about 5 minutes on 2 cores) or
``python -m benchmarks --quick`` (a smoke run of about 30 seconds); ``--plots`` draws
the run (matplotlib). ``python -m benchmarks.instructions`` counts instructions per
task under cachegrind. Not part of the test suite. See ``benchmarks/README.md``.
"""
