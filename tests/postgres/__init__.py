"""The PostgreSQL suite: tasker_aio with asyncpg connections against a real server.

The server is a throwaway cluster the tests start themselves (:mod:`.server`); the
fixtures live in this package's ``conftest.py``.
"""
