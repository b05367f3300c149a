"""README stays true: every Python snippet is an excerpt of an example that runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def test_every_python_snippet_is_in_an_example() -> None:
    """Each ```python block of README.md is verbatim in an example or a tested docs page.

    The examples run in tests/test_examples.py; docs/web.md's blocks are served and
    queried in tests/test_web_docs.py.
    """
    snippets = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert snippets, "README has no Python snippet"
    examples = {p.name: normalized(p.read_text()) for p in (ROOT / "examples").glob("*.py")}
    web_page = (ROOT / "docs" / "web.md").read_text()
    for block in re.findall(r'```python title="[\w.]+"\n(.*?)```', web_page, flags=re.DOTALL):
        examples[f"docs/web.md: {block[:40]}"] = normalized(block)
    for snippet in snippets:
        body = normalized(snippet)
        assert any(body in text for text in examples.values()), body[:200]


def test_readme_names_the_ci_command() -> None:
    """The README's test command is the script CI runs."""
    assert "bash .ci/run" in README
    assert (ROOT / ".ci" / "run").is_file()


def test_referenced_example_files_exist() -> None:
    """Every examples/*.py the README mentions exists."""
    for name in set(re.findall(r"examples/([a-z_]+\.py)", README)):
        assert (ROOT / "examples" / name).is_file(), name
