"""README stays true: every Python snippet is an excerpt of an example that runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def test_every_python_snippet_is_in_an_example() -> None:
    """Each ```python block of README.md appears verbatim in a file under examples/."""
    snippets = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert snippets, "README has no Python snippet"
    examples = {p.name: normalized(p.read_text()) for p in (ROOT / "examples").glob("*.py")}
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
