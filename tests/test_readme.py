"""README's snippets run as written, and its Quick start holds exactly the two promised commands."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).parents[1] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.slow  # the "Your own model" snippet trains and sweeps a CNN
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_python_snippet_runs(index):
  exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {})


def test_quick_start_has_the_two_commands():
  quick_start = README.split("## Quick start", 1)[1]
  block = re.search(r"```bash\n(.*?)```", quick_start, flags=re.S).group(1)
  assert block.strip().splitlines() == [
    "pip install -e . && jaxopt-study tour",
    'pip install -e ".[test]" && pytest',
  ]
