"""`hessian.outliers`: eigengap counts on spectra whose outliers are known."""

import numpy as np
import pytest

from jaxopt_study.hessian import outliers


def test_planted_outliers_are_counted():
  rng = np.random.default_rng(0)
  bulk = rng.uniform(0.001, 0.01, size=500)
  planted = np.asarray([5.0, 3.0, 2.5, 1.0, 0.8, 0.5])
  found = outliers.count_outliers(rng.permutation(np.concatenate([bulk, planted])), search=50)
  assert found.count == planted.size
  assert found.bulk_edge == pytest.approx(bulk.max())
  assert found.gap_ratio == pytest.approx(0.5 / bulk.max())


def test_the_largest_ratio_wins_not_the_largest_difference():
  # differences: 90 between 100 and 10, ratios: 10 (100/10) < 50 (10/0.2)
  found = outliers.count_outliers(np.asarray([100.0, 10.0, 0.2, 0.19, 0.18]), search=3)
  assert (found.count, found.gap_ratio) == (2, pytest.approx(50.0))


def test_fraction_near_zero():
  values = np.asarray([-0.005, 0.0, 0.009, 0.5, 1.0])
  assert outliers.fraction_near_zero(values, 0.01) == pytest.approx(3 / 5)
  assert outliers.fraction_near_zero(-values, 0.6) == pytest.approx(4 / 5)  # |λ| counts


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="search=3"):
    outliers.count_outliers(np.asarray([1.0, 0.5, -0.1, 0.2]), search=3)
  with pytest.raises(ValueError, match="search=0"):
    outliers.count_outliers(np.ones(4), search=0)
  with pytest.raises(ValueError, match="relative=1"):
    outliers.fraction_near_zero(np.ones(3), 1)
