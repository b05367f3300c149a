"""Fixtures for the PostgreSQL suite: one throwaway server per pytest run, a view per test.

Without asyncpg or PostgreSQL's server binaries the suite is skipped, with the reason,
except when the ``CI`` environment variable is set: then it fails, loudly, so that CI
never passes without having run it (``.ci/run`` installs both).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:  # imported lazily: they need asyncpg, which may be missing here
    from .helpers import PgTest
    from .server import PgServer

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Fail in CI, skip elsewhere: the PostgreSQL suite cannot run here."""
    if IN_CI:
        pytest.fail(f"the PostgreSQL suite must run in CI, but: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL suite skipped (it fails instead when CI is set): {reason}")


if IN_CI and importlib.util.find_spec("asyncpg") is None:
    # Loud at collection; elsewhere each test module skips itself with importorskip.
    raise ImportError("the PostgreSQL suite must run in CI: install asyncpg (the test group)")

_TEST_NUMBERS = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server for the whole run, stopped and deleted at the end."""
    from .server import PgServer, PgUnavailable

    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        reason = str(exc)
    else:
        try:
            yield server
        finally:
            server.stop()
        return
    unavailable(reason)  # outside the except block: no chained traceback


@pytest.fixture
async def pg(pg_server: PgServer, request: pytest.FixtureRequest) -> AsyncIterator[PgTest]:
    """This test's view of the server; afterwards its tables are dropped and none of its
    connections may be left open.
    """
    from .helpers import PgTest

    test_name = re.sub(r"[^A-Za-z0-9_.\[\]-]", "_", request.node.name)
    application_name = f"tasker-{next(_TEST_NUMBERS)}-{test_name}"[:63]  # NAMEDATALEN - 1
    view = PgTest(pg_server, application_name)
    yield view
    await view.finish()
