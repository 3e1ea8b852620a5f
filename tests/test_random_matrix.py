"""`random_matrix`: the GOE positive-definite probability, exact and by Monte Carlo."""

import jax
import numpy as np
import pytest

from jaxopt_study.lab import random_matrix


def test_exact_values_match_closed_forms():
  # N = 1: a Gaussian is positive half the time; N = 2: P = (2 − √2)/4 (m > r, m ~ N(0, 1) and r
  # Rayleigh, for the eigenvalues (a + c)/2 ± √(((a − c)/2)² + b²))
  assert random_matrix.positive_definite_probability(1) == pytest.approx(0.5, rel=1e-9)
  assert random_matrix.positive_definite_probability(2) == pytest.approx(
    (2 - np.sqrt(2)) / 4, rel=1e-9
  )


def test_exact_values_decay_towards_the_large_deviation_rate():
  values = np.log([random_matrix.positive_definite_probability(n) for n in range(1, 9)])
  local = np.diff(values) / np.diff(np.arange(1, 9) ** 2)
  assert np.all(np.diff(local) > 0)  # −log P_N / N² falls towards θ from above
  assert -local[-1] == pytest.approx(random_matrix.GOE_THETA, rel=0.15)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_monte_carlo_agrees_with_the_exact_value(size):
  samples = 2**16
  count = random_matrix.count_positive_definite(jax.random.key(size), size, samples)
  exact = random_matrix.positive_definite_probability(size)
  standard_error = np.sqrt(exact * (1 - exact) / samples)
  assert abs(count / samples - exact) < 4 * standard_error


def test_monte_carlo_against_numpy_eigenvalues():
  key = jax.random.key(7)
  g = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (3, 3, 4096)))
  a = np.moveaxis((g + np.swapaxes(g, 0, 1)) / np.sqrt(2.0), -1, 0)
  expected = int(np.sum(np.linalg.eigvalsh(a)[:, 0] > 0))
  assert random_matrix.count_positive_definite(key, 3, 4096, batch=4096) == expected


def test_bad_arguments_are_refused():
  with pytest.raises(ValueError, match="size=0"):
    random_matrix.count_positive_definite(jax.random.key(0), 0, 16)
  with pytest.raises(ValueError, match="samples=100"):
    random_matrix.count_positive_definite(jax.random.key(0), 2, 100, batch=64)
  with pytest.raises(ValueError, match="size=11"):
    random_matrix.positive_definite_probability(11)
