"""The web helpers are opt-in: importing tasker_aio loads no web framework."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from typing import TypeVar

import pytest

WEB = ("aiohttp", "fastapi", "httpx", "starlette", "uvicorn")


def imported_after(statement: str) -> set[str]:
    """The top-level packages among WEB that a fresh interpreter has loaded after ``statement``."""
    program = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB!r}))))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    return set(json.loads(completed.stdout))


def test_import_tasker_aio_loads_no_web_framework() -> None:
    """`import tasker_aio` (and its public names) imports none of the web frameworks."""
    assert imported_after("import tasker_aio\nfrom tasker_aio import *") == set()


def test_fastapi_helpers_need_only_starlette() -> None:
    """tasker_aio.fastapi imports Starlette but not FastAPI: plain Starlette apps can use it."""
    if importlib.util.find_spec("starlette") is None:
        pytest.skip("starlette is not installed")
    assert imported_after("import tasker_aio.fastapi") == {"starlette"}


def test_aiohttp_helpers_need_only_aiohttp() -> None:
    """tasker_aio.aiohttp imports aiohttp and nothing else of the web stack."""
    if importlib.util.find_spec("aiohttp") is None:
        pytest.skip("aiohttp is not installed")
    assert imported_after("import tasker_aio.aiohttp") == {"aiohttp"}


@pytest.mark.parametrize("module", ["tasker_aio.fastapi", "tasker_aio.aiohttp"])
def test_helper_modules_export_what_they_define(module: str) -> None:
    """Each helper module's __all__ is exactly its own public classes, functions and keys."""
    framework = "starlette" if module.endswith("fastapi") else "aiohttp"
    pytest.importorskip(framework)
    helpers = importlib.import_module(module)
    own = {
        name
        for name, value in vars(helpers).items()
        if not name.startswith("_")
        and (getattr(value, "__module__", None) == module or name.isupper())
        and not isinstance(value, TypeVar)
    }
    assert set(helpers.__all__) == own
