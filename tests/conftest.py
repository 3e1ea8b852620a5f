"""Strict JAX settings for every test, and an opt-in float64 mode for reference comparisons."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
  """Runs the test with float64 enabled, for comparisons with the book's pseudocode in float64."""
  with jax.enable_x64(True):
    yield
