"""Developer sessions: tests, lint, mypy, examples, docs by default; benchmarks and soak opt-in."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "mypy", "examples", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYPROJECT = nox.project.load_toml("pyproject.toml")
ROOT = Path(__file__).parent
PYTHONS = ["3.11", "3.12", "3.13"]  # what CI covers; .ci/run finds them under pyenv


def install(session: nox.Session, *groups: str, extras: str = "") -> None:
    """Install the project (editable, with ``extras``) and the given dependency groups."""
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", f".[{extras}]" if extras else ".", *requirements)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite on each supported Python, web integration tests included."""
    install(session, extras="test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def mypy(session: nox.Session) -> None:
    """mypy --strict over the package, tests, examples and benchmarks."""
    install(session, "lint", "bench", extras="test,ray")
    session.run("mypy")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example program; each must exit 0."""
    install(session, extras="web")
    for example in sorted((ROOT / "examples").glob("*.py")):
        if example.name.startswith(("fastapi_", "aiohttp_", "postgres_", "ray_")):
            continue  # servers, or needing one: started and queried by their tests instead
        session.run("python", str(example))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with ``mkdocs build --strict`` (into ``site/``).

    ``-- --site-dir DIR`` builds elsewhere; a broken link, anchor or API reference fails.
    """
    # mkdocstrings reads the package's source; it need not be installed.
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(default=False)
def benchmarks(session: nox.Session) -> None:
    """The benchmark suite (``-- --quick`` for a short run)."""
    install(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """A million tasks with faults and bursts; reports throughput, memory, invariants."""
    install(session, extras="test")
    session.run("python", "-m", "tests.soak", *session.posargs)
