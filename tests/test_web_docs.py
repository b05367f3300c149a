"""docs/web.md runs as written: its Python blocks lint, type-check and serve its curls.

Each ```python block with a ``title="name.py"`` is saved under that name; the ```console
blocks after it hold ``$ curl -s http://127.0.0.1:8000/path`` lines, each followed by
the output it prints. The test imports the saved module, serves its ``app`` on a free
port of 127.0.0.1 (uvicorn for ASGI apps, ``web.AppRunner`` for aiohttp) and replays
each curl, comparing the JSON answers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("aiohttp")

import httpx
from aiohttp import web

from .served import WAIT, AiohttpServer, UvicornServer, serve_aiohttp, serve_asgi

pytestmark = pytest.mark.web

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "web.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
CURL = re.compile(r"^\$ curl -s http://127\.0\.0\.1:8000(/\S*)$")


@dataclass
class Snippet:
    """A titled Python block and the curls (path, expected output) shown after it."""

    name: str
    code: str
    curls: list[tuple[str, str]] = field(default_factory=list)


def snippets() -> list[Snippet]:
    """The page's titled Python blocks, in order, each with the curls that follow it."""
    found: list[Snippet] = []
    for language, info, body in FENCE.findall(PAGE.read_text()):
        if language == "python":
            title = re.search(r'title="([\w.]+\.py)"', info)
            assert title, f"a python block without a title: {body[:80]!r}"
            found.append(Snippet(title.group(1), body))
        elif language == "console":
            assert found, "a console block before any python block"
            found[-1].curls.extend(curls(body))
    return found


def curls(block: str) -> Iterator[tuple[str, str]]:
    """(path, expected output) for each ``$ curl`` line of a console block."""
    lines = block.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("$"):
            match = CURL.match(line)
            assert match, f"not a checkable command: {line!r}"
            output = lines[index + 1]
            assert not output.startswith("$"), f"{line!r} shows no output"
            yield match.group(1), output


SNIPPETS = snippets()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """The page's Python blocks saved under their titles in a fresh directory."""
    for snippet in SNIPPETS:
        (tmp_path / snippet.name).write_text(snippet.code)
    return tmp_path


def load(path: Path) -> Iterator[ModuleType]:
    """Import ``path`` as a fresh module (registered while in use, as a real import is)."""
    name = f"docs_web_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


async def replay(app: Any, paths: list[str]) -> list[Any]:
    """Serve ``app`` on 127.0.0.1; GET each path; return the decoded JSON answers."""
    answers: list[Any] = []
    serving: AbstractAsyncContextManager[UvicornServer | AiohttpServer]
    if isinstance(app, web.Application):
        serving = serve_aiohttp(app, handler_cancellation=True)
    else:
        serving = serve_asgi(app)
    async with serving as server, httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        for path in paths:
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
            answers.append(response.json())
    return answers


def test_page_has_the_expected_blocks() -> None:
    """The page shows a FastAPI app, a lifespan app and an aiohttp app, each with curls."""
    assert [snippet.name for snippet in SNIPPETS] == ["app.py", "lifespan_app.py", "aiohttp_app.py"]
    for snippet in SNIPPETS:
        assert snippet.curls, f"{snippet.name} has no curl to check it with"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
async def test_snippet_serves_what_the_page_shows(snippet: Snippet, saved: Path) -> None:
    """Served on 127.0.0.1, the block answers each curl after it with the output shown."""
    for module in load(saved / snippet.name):
        answers = await replay(module.app, [path for path, _ in snippet.curls])
        assert answers == [json.loads(output) for _, output in snippet.curls]


def test_snippets_pass_ruff(saved: Path) -> None:
    """The blocks pass the project's ruff lint and format checks."""
    pytest.importorskip("ruff")
    config = str(ROOT / "pyproject.toml")
    files = [str(saved / snippet.name) for snippet in SNIPPETS]
    for command in (["check"], ["format", "--check", "--diff"]):
        completed = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--config", config, *files],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.timeout(300)  # a cold mypy cache analyses FastAPI, pydantic and aiohttp
def test_snippets_pass_mypy_strict(saved: Path) -> None:
    """The blocks, the Annotated dependency alias included, pass mypy --strict."""
    api = pytest.importorskip("mypy.api")
    files = [str(saved / snippet.name) for snippet in SNIPPETS]
    config = str(ROOT / "pyproject.toml")
    cache = str(ROOT / ".mypy_cache")  # the project's: warm when mypy ran before the tests
    stdout, stderr, status = api.run(
        ["--strict", "--config-file", config, "--cache-dir", cache, *files]
    )
    assert status == 0, stdout + stderr


def test_install_commands_name_real_extras() -> None:
    """Every extra the page installs (``-e ".[x]"``) is declared in pyproject.toml."""
    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named = set(re.findall(r'-e "\.\[(\w+)\]"', PAGE.read_text()))
    assert named, "the page names no extra"
    assert named <= declared
