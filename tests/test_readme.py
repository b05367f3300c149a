"""README stays true: every Python snippet is a whole program that runs, every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def test_every_python_snippet_is_in_an_example() -> None:
    """Each ```python block of README.md is a whole example or docs page program, verbatim.

    The examples run in tests/test_examples.py, the docs pages' titled programs in
    tests/test_docs.py; docs/web.md's are served and queried in tests/test_web_docs.py.
    """
    snippets = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert snippets, "README has no Python snippet"
    examples = {p.name: normalized(p.read_text()) for p in (ROOT / "examples").glob("*.py")}
    for page in (ROOT / "docs").rglob("*.md"):
        text = page.read_text()
        for block in re.findall(r'```python title="[\w.]+"\n(.*?)```', text, flags=re.DOTALL):
            examples[f"{page.name}: {block[:40]}"] = normalized(block)
    for snippet in snippets:
        body = normalized(snippet)
        # The whole program, not an excerpt: a snippet runs as copied.
        assert any(body == text for text in examples.values()), body[:200]


def test_readme_names_the_ci_command() -> None:
    """The README's test command is the script CI runs."""
    assert "bash .ci/run" in README
    assert (ROOT / ".ci" / "run").is_file()


def test_referenced_example_files_exist() -> None:
    """Every examples/*.py the README mentions exists."""
    for name in set(re.findall(r"examples/([a-z_]+\.py)", README)):
        assert (ROOT / "examples" / name).is_file(), name


def test_relative_links_resolve() -> None:
    """Every relative link of the README names a file of the repository."""
    prose = re.sub(r"```.*?```|`[^`]*`", "", README, flags=re.DOTALL)  # code is not links
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", prose):
        assert (ROOT / target).exists(), target
