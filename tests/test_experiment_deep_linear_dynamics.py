"""The deep linear dynamics experiment (Saxe et al. 2013): its quick config, its claims."""

import sys

import jax
import ml_collections
import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study import data as data_lib
from jaxopt_study import models, registry
from jaxopt_study.experiment import REPRODUCED, verdict

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


def test_mode_strengths_follow_full_batch_gradient_descent():
  """Part (a) descends ½ mean ‖x W₁W₂ − y‖² on the whole training set (`train.descend`): its
  u_α(t) = v_αᵀ W₁W₂ u_α match gradient descent on the same kernels written out in float64,
  through the sigmoid of both modes (float32 rounding only)."""
  module = sys.modules[type(registry.load(NAME)).__module__]
  rate, steps, s = 0.1, 60, [3.0, 1.0]
  config = ml_collections.ConfigDict(
    {"seed": 0, "dim": 4, "singular_values": s, "mode_init_scale": 0.05}
    | {"mode_learning_rate": rate, "mode_steps": steps}
  )
  data = data_lib.whitened_linear_regression(jax.random.key(0), 16, 4, 4, s)
  path, _, _ = module.mode_strengths(config, data)
  net = models.build_model(
    "deep_linear", 4, 4, seed=0, width=4, depth=2, init="glorot_normal", init_scale=0.05
  )
  w1, w2 = (np.asarray(layer.kernel[...], np.float64) for layer in net.layers)
  x, y = np.asarray(data.x_train, np.float64), np.asarray(data.y_train, np.float64)
  u, _, vt = np.linalg.svd(np.asarray(data.y_train.T @ data.x_train) / len(x))
  left, right = u[:, :2].astype(np.float64), vt[:2].T.astype(np.float64)
  expected = []
  for _ in range(steps + 1):
    expected.append(np.einsum("ia,ij,ja->a", right, w1 @ w2, left))
    residual = (x @ w1 @ w2 - y) / len(x)
    w1, w2 = w1 - rate * x.T @ residual @ w2.T, w2 - rate * (x @ w1).T @ residual
  assert path[-1] == pytest.approx(s, rel=0.01)  # both modes learned
  np.testing.assert_allclose(path, expected, rtol=1e-5)


def test_depth_slows_gaussian_init_more_than_orthogonal(summary):
  """Saxe et al. §4: at each depth's best rate, orthogonal init learns in a time that grows far
  less with depth than a scaled Gaussian init's (the paper: not at all)."""
  orthogonal = summary["depth_time_ratio_orthogonal"]
  gaussian = summary["depth_time_ratio_gaussian"]
  assert not summary["depth_time_ratio_orthogonal_censored"]
  assert gaussian >= 10.0
  assert orthogonal < gaussian / 3


def test_verdicts_judge_every_claim(summary):
  """Gaussian init slows with depth (reproduced); orthogonal init is judged flat if its time less
  than doubles, and the mode slope if within 20% of the theory's."""
  assert summary["mode_time_slope_rel_error"] == pytest.approx(
    abs(
      summary["mode_time_vs_inverse_s_slope"] / summary["mode_time_vs_inverse_s_slope_theory"] - 1
    )
  )
  assert summary["verdicts"] == {
    "mode_time_vs_inverse_s_slope": verdict(summary["mode_time_slope_rel_error"] < 0.2),
    "depth_time_ratio_orthogonal": verdict(summary["depth_time_ratio_orthogonal"] < 2),
    "depth_time_ratio_gaussian": REPRODUCED,
  }


@pytest.mark.parametrize(
  ("field", "value"),
  [("singular_values", [1.0]), ("depths", [2]), ("loss_threshold", 1.5), ("num_examples", 4)],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
