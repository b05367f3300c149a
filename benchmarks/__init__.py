"""Benchmarks for tasker_aio against the raw asyncio floor and the peer libraries.

Run ``python -m benchmarks`` (full, about 5 minutes) or ``python -m benchmarks --quick``
(a smoke run of about 20 seconds). Not part of the test suite. See ``benchmarks/README.md``.
"""
