"""A griffe extension: render the docstrings' reST bits as Markdown for mkdocstrings.

The docstrings are Google style (``Args:``, ``Returns:``, ``Raises:``) with a few reST
habits that ``help()`` and editors show as they are, but that Markdown would print
literally: Sphinx roles (``:class:`~tasker_aio.Config```) and literal blocks introduced
by ``::``. This turns a role into a code span, linked to the API reference when it names
a public object by its full path, and a ``::`` block into a fenced Python block. The
docstrings themselves stay as they are.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any

import griffe

PACKAGE = Path(__file__).resolve().parent.parent / "tasker_aio"


def _public_names() -> frozenset[str]:
    """The names in ``tasker_aio.__all__``, read from the source, not imported."""
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__"
            for target in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


PUBLIC = _public_names()
ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([\w.]+)(\(\))?`"
)
LITERAL = re.compile(r"::\n\n((?:(?:[ \t]+[^\n]*)?\n)+)")


def role(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` -> a code span, linked when ``a.b.C`` is a public full path.

    A path starting with a public name of the package (``TaskManager.run_task``) is
    taken as relative to the package.
    """
    short, path, call = match.groups()
    shown = (path.rsplit(".", 1)[-1] if short else path) + (call or "")
    if path.split(".")[0] in PUBLIC:
        path = f"tasker_aio.{path}"
    parts = path.split(".")
    public = parts[0] == "tasker_aio" and not any(p.startswith("_") for p in parts)
    return f"[`{shown}`][{path}]" if public else f"`{shown}`"


def literal(match: re.Match[str]) -> str:
    """A paragraph's ``::`` and the indented block after it -> ``:`` and a fence."""
    block = textwrap.dedent(match.group(1)).strip("\n")
    return f":\n\n```python\n{block}\n```\n\n"


def markdown(text: str) -> str:
    """The docstring ``text`` with its roles and literal blocks turned into Markdown."""
    return ROLE.sub(role, LITERAL.sub(literal, text + "\n")).rstrip("\n")


class ReSTToMarkdown(griffe.Extension):
    """Rewrites each loaded docstring with :func:`markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every object it loads."""
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
