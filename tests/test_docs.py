"""The documentation site runs as written: every Python block of docs/ is a tested program.

Each ```python block of a page has a ``title="name.py"``: it is a complete program. This
test saves it under its title, runs it, and compares what it prints with the
``text title="Output"`` block that follows it, if there is one; the blocks also pass
``ruff`` (with docs/ruff.toml: 88 columns, so that a page shows them without
scrolling) and ``mypy --strict``. docs/web.md's blocks are web apps: tests/test_web_docs.py
serves them and replays the page's curls instead. The site itself is built with
``mkdocs build --strict`` by ``.ci/run`` and ``nox -s docs``.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SERVED = DOCS / "web.md"  # its blocks are apps, served by tests/test_web_docs.py
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
TITLE = re.compile(r'title="([^"]+)"')


@dataclass
class Program:
    """A titled Python block of a page and the output shown after it (None: not shown)."""

    page: str
    name: str
    code: str
    output: str | None = None


def pages() -> list[Path]:
    """Every Markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


def programs(page: Path) -> list[Program]:
    """The page's Python blocks, in order, each with the output block that follows it."""
    found: list[Program] = []
    fences = FENCE.findall(page.read_text())
    for index, (language, info, body) in enumerate(fences):
        if language != "python":
            continue
        title = TITLE.search(info)
        assert title, f"{page.name}: a python block without a title: {body[:80]!r}"
        output = None
        if index + 1 < len(fences):
            next_language, next_info, next_body = fences[index + 1]
            if next_language == "text" and 'title="Output"' in next_info:
                output = next_body
        found.append(Program(str(page.relative_to(DOCS)), title.group(1), body, output))
    return found


PROGRAMS = [program for page in pages() if page != SERVED for program in programs(page)]


def lines(text: str) -> list[str]:
    """``text`` as lines without trailing blanks, and without blank lines at either end."""
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every program saved under its title in one fresh directory."""
    directory = tmp_path_factory.mktemp("docs")
    for program in PROGRAMS:
        (directory / program.name).write_text(program.code)
    return directory


def test_every_python_block_is_a_titled_fence_at_the_margin() -> None:
    """No Python block hides from these tests (indented, or untitled, or unfenced)."""
    for page in pages():
        text = page.read_text()
        opened = len(re.findall(r"^\s*```python", text, flags=re.MULTILINE))
        found = [language for language, _, _ in FENCE.findall(text)].count("python")
        assert opened == found, f"{page.name}: a ```python fence is indented"
        programs(page)  # asserts that each has a title


def test_titles_are_unique_python_file_names() -> None:
    """Each program has its own ``name.py``, across all pages (served apps included)."""
    names = [program.name for page in pages() for program in programs(page)]
    assert all(re.fullmatch(r"[a-z_]+\.py", name) for name in names), names
    assert len(names) == len(set(names)), names


def test_the_guide_has_programs_with_outputs() -> None:
    """The pages show programs, most of them with what they print."""
    assert len(PROGRAMS) >= 10
    assert sum(program.output is not None for program in PROGRAMS) >= 10


@pytest.mark.parametrize("program", PROGRAMS, ids=[program.name for program in PROGRAMS])
def test_program_prints_what_the_page_shows(program: Program, saved: Path) -> None:
    """The program exits 0 and prints exactly the output block shown after it."""
    completed = subprocess.run(
        [sys.executable, program.name],
        cwd=saved,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{program.page}: {program.name} exited with {completed.returncode}\n"
        f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    if program.output is not None:
        assert lines(completed.stdout) == lines(program.output), completed.stderr


def test_programs_pass_ruff(saved: Path) -> None:
    """The programs pass ruff's lint and format checks, with the pages' settings."""
    pytest.importorskip("ruff")
    config = ["--config", str(DOCS / "ruff.toml")]
    files = [str(saved / program.name) for program in PROGRAMS]
    for command in (["check"], ["format", "--check", "--diff"]):
        completed = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *config, *files],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.timeout(300)  # a cold mypy cache analyses anyio too
def test_programs_pass_mypy_strict(saved: Path) -> None:
    """The programs pass mypy --strict."""
    api = pytest.importorskip("mypy.api")
    files = [str(saved / program.name) for program in PROGRAMS]
    config = str(ROOT / "pyproject.toml")
    cache = str(ROOT / ".mypy_cache")  # the project's: warm when mypy ran before the tests
    stdout, stderr, status = api.run(
        ["--strict", "--config-file", config, "--cache-dir", cache, *files]
    )
    assert status == 0, stdout + stderr


def test_pages_link_only_to_pages_that_exist() -> None:
    """Relative links between pages name files of docs/ (mkdocs --strict checks anchors)."""
    for page in pages():
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.name} -> {target}"


def griffe_roles() -> ModuleType:
    """docs/griffe_roles.py, imported (it needs griffe, from the docs group)."""
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_roles", DOCS / "griffe_roles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LITERAL = "Use it::\n\n    x = 1\n\n    y = 2\n\nThen."
FENCED = "Use it:\n\n```python\nx = 1\n\ny = 2\n```\n\nThen."


@pytest.mark.parametrize(
    ("docstring", "markdown"),
    [
        (":class:`~tasker_aio.Config`", "[`Config`][tasker_aio.Config]"),
        (":exc:`tasker_aio.TaskerError`", "[`tasker_aio.TaskerError`][tasker_aio.TaskerError]"),
        (":meth:`~TaskManager.stop`", "[`stop`][tasker_aio.TaskManager.stop]"),
        (":meth:`submit`", "`submit`"),
        (":mod:`tasker_aio._engine`", "`tasker_aio._engine`"),
        (":func:`get_task_manager()`", "`get_task_manager()`"),
        (LITERAL, FENCED),
        ("Args:\n    fn: a task.", "Args:\n    fn: a task."),
    ],
)
def test_docstring_rest_becomes_markdown(docstring: str, markdown: str) -> None:
    """Roles become code spans (linked when public), ``::`` blocks fenced Python."""
    assert griffe_roles().markdown(docstring) == markdown
