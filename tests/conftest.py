"""Strict JAX settings for every test, one compilation cache per test run, and an opt-in float64
mode for reference comparisons."""

import atexit
import os
import shutil
import tempfile

import jax
import pytest

from jaxopt_study import cli

jax.config.update("jax_numpy_rank_promotion", "raise")

# One persistent compilation cache for this run, shared by the tests, the pytest-xdist workers
# and the processes the tests start (the CLI reads JAXOPT_STUDY_CACHE_DIR), removed at the end by
# the process that made it; never the user's own cache.
if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("JAXOPT_STUDY_CACHE_DIR"):
  _CACHE = os.environ["JAXOPT_STUDY_CACHE_DIR"]
else:
  _CACHE = tempfile.mkdtemp(prefix="jaxopt-study-test-cache-")
  os.environ["JAXOPT_STUDY_CACHE_DIR"] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
cli.use_compile_cache(_CACHE)


@pytest.fixture
def x64():
  """Runs the test with float64 enabled, for comparisons with the book's pseudocode in float64."""
  with jax.enable_x64(True):
    yield
