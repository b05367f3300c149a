"""The shape of the package: no import cycles, small modules, no reaching into privates.

These read the source with :mod:`ast`, so ``TYPE_CHECKING`` imports and imports inside
functions count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tasker_aio"
MAX_LINES = 420  # "about 400": past this a module is doing more than one job

# (module, attribute): private names read on something other than self/cls, and why.
ALLOWED_PRIVATE_READS = {
    # HdrHistogram's index function, used to bound a one-pass percentile scan.
    ("tasker_aio._metrics", "_counts_index_for"),
    # The exporters find the manager's collector (to read its histograms): TaskManager
    # has no public accessor for it yet. One read, in one function.
    ("tasker_aio._exporting", "_settings"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Each tasker_aio module and the tasker_aio modules it imports."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    packages = {name for name in modules if (PACKAGE.parent / name.replace(".", "/")).is_dir()}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, name in packages, node)
                targets = [source]
                # "from . import x" imports the submodule x
                targets += [f"{source}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package() -> None:
    """No tasker_aio module imports itself back, TYPE_CHECKING imports included."""
    cycle = _find_cycle(_imports(_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The cycle check can fail: a two-module loop is reported."""
    assert _find_cycle({"a": {"b"}, "b": {"a"}, "c": set()}) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_resolve_to_package_modules() -> None:
    """The graph sees the engine's relative imports (so the cycle test sees real edges)."""
    graph = _imports(_modules())
    assert "tasker_aio._engine.admission" in graph["tasker_aio._engine.outcomes"]
    assert "tasker_aio._types" in graph["tasker_aio._engine.queues"]
    assert "tasker_aio._engine.lifecycle" in graph["tasker_aio._manager"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_module_is_small(path: Path) -> None:
    """Every module stays at about 400 lines or fewer."""
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines"


def test_no_module_imports_another_modules_private_names() -> None:
    """``from .x import _name`` never appears between tasker_aio modules."""
    found = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                node.level or "tasker_aio" in (node.module or "")
            ):
                found += [
                    f"{name}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert found == []


def test_private_attributes_are_read_only_on_self() -> None:
    """``obj._name`` is read on ``self``/``cls`` only, except the listed, explained cases."""
    found = set()
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.add((name, node.attr))
    assert found - ALLOWED_PRIVATE_READS == set()
