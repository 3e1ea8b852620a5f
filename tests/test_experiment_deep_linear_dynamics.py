"""The deep linear dynamics experiment (Saxe et al. 2013): its quick config, its claims."""

import pytest
from quick_runs import quick_run_fixtures, refused_field

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "deep_linear_dynamics"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 4


def test_mode_half_time_grows_as_inverse_singular_value(summary):
  """Saxe et al. eq. 7: t_half = τ/(2s) ln((s − u₀)/u₀), linear in 1/s up to the logarithm.

  From a small random (not decoupled) init, u₀ is only the mode's initial projection, so the
  theory's slope is matched within a factor 2, and the linear fit explains most of the variance.
  """
  assert summary["mode_time_vs_inverse_s_slope"] > 0
  assert summary["mode_time_vs_inverse_s_r_squared"] > 0.8
  ratio = summary["mode_time_vs_inverse_s_slope"] / summary["mode_time_vs_inverse_s_slope_theory"]
  assert 0.5 < ratio < 2.0


def test_depth_slows_gaussian_init_more_than_orthogonal(summary):
  """Saxe et al. §4: at each depth's best rate, orthogonal init learns in a time that grows far
  less with depth than a scaled Gaussian init's (the paper: not at all)."""
  orthogonal = summary["depth_time_ratio_orthogonal"]
  gaussian = summary["depth_time_ratio_gaussian"]
  assert not summary["depth_time_ratio_orthogonal_censored"]
  assert gaussian >= 10.0
  assert orthogonal < gaussian / 3


@pytest.mark.parametrize(
  ("field", "value"),
  [("singular_values", [1.0]), ("depths", [2]), ("loss_threshold", 1.5), ("num_examples", 4)],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
