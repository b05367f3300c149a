"""A griffe extension: render the docstrings' reST bits as Markdown for mkdocstrings.

The docstrings are Google style (``Args:``, ``Returns:``, ``Raises:``) with a few reST
habits that ``help()`` and editors show as they are, but that Markdown would print
literally: Sphinx roles (``:class:`~tasker_aio.Config```) and literal blocks introduced
by ``::``. This turns a role into a code span, linked to the API reference when it names
a public object by its full path, and a ``::`` block into a fenced Python block. The
docstrings themselves stay as they are.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([\w.]+)(\(\))?`")
LITERAL = re.compile(r"::\n\n((?:(?:[ \t]+[^\n]*)?\n)+)")


def role(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` -> a code span, linked when ``a.b.C`` is a public full path."""
    short, path, call = match.groups()
    shown = (path.rsplit(".", 1)[-1] if short else path) + (call or "")
    parts = path.split(".")
    public = parts[0] == "tasker_aio" and not any(p.startswith("_") for p in parts)
    return f"[`{shown}`][{path}]" if public else f"`{shown}`"


def literal(match: re.Match[str]) -> str:
    """A paragraph's ``::`` and the indented block after it -> ``:`` and a fenced block."""
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
