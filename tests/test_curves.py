"""`jaxopt_study.lab.curves`: reading a metric back from history.csv, and power-law slopes."""

import numpy as np
import pytest

from jaxopt_study.lab import curves
from jaxopt_study.results import history_rows, write_csv


def test_read_curves_returns_one_metric_per_member(tmp_path):
  rows = history_rows("a", {"step": np.asarray([0, 5]), "loss": np.asarray([2.0, 1.0])})
  rows += history_rows("b", {"step": np.asarray([0]), "loss": np.asarray([3.0])})
  rows += history_rows("a", {"step": np.asarray([0]), "other": np.asarray([9.0])})
  write_csv(tmp_path / "history.csv", rows)
  assert curves.read_curves(tmp_path / "history.csv", "loss") == {
    "a": ([0.0, 5.0], [2.0, 1.0]),
    "b": ([0.0], [3.0]),
  }


def test_log_slope_recovers_a_power_law():
  x = np.asarray([1.0, 2.0, 8.0, 100.0])
  assert curves.log_slope(x, 3.0 * x**-0.5) == pytest.approx(-0.5, abs=1e-12)


def test_log_slope_refuses_nonpositive_values():
  with pytest.raises(ValueError, match="positive"):
    curves.log_slope([1.0, 2.0], [1.0, 0.0])


def test_mean_by_prefix_averages_each_groups_members():
  runs = {
    "a/seed0": ([0, 10], [1.0, 3.0]),
    "b/seed0": ([0, 10], [5.0, 5.0]),
    "a/seed1": ([0, 10], [2.0, 4.0]),
  }
  means = curves.mean_by_prefix(runs)
  assert list(means) == ["a", "b"]
  assert means["a"][0] == [0, 10]
  np.testing.assert_array_equal(means["a"][1], [1.5, 3.5])
  np.testing.assert_array_equal(means["b"][1], [5.0, 5.0])
