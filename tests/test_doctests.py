"""Every docstring example (`>>>`) in the package runs and prints what it says."""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import jaxopt_study

WITH_EXAMPLES = sorted(
  info.name
  for info in pkgutil.walk_packages(jaxopt_study.__path__, "jaxopt_study.")
  if ">>>" in Path(importlib.util.find_spec(info.name).origin).read_text()
)


def test_the_package_has_docstring_examples():
  assert "jaxopt_study.optim.first_order" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name):
  flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  result = doctest.testmod(importlib.import_module(name), optionflags=flags)
  assert result.attempted > 0
  assert result.failed == 0
