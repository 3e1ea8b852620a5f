"""The minibatch-noise experiment (§8.1.3, §8.2.6): its quick config through the CLI, its claims."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from quick_runs import CONFIGS, quick_run_fixtures, refused_field

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models
from jaxopt_study.config import load_config
from jaxopt_study.experiment import INCONCLUSIVE, REPRODUCED, margin, verdict
from jaxopt_study.lab import digits_tasks
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "minibatch_noise"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html"} <= names
  assert {"standard_error.png", "reuse_bias.png"} <= names


def test_standard_error_falls_as_one_over_root_n(summary):
  """Eq. 8.8: σ/√n, a log-log slope of −1/2 (exact in expectation with replacement)."""
  assert summary["se_slope"] == pytest.approx(-0.5, abs=0.03)


def test_measured_standard_errors_match_theory(finished_run, summary):
  """With and without replacement, each measured s.e. is within 10% of its formula."""
  assert summary["se_ratio_max_deviation"] < 0.1
  table = read_csv(finished_run / "results.csv")
  largest = max(table, key=lambda r: r["batch_size"])
  # The finite-population correction is visible at n = 256 of N = 898: √((N−n)/(N−1)) ≈ 0.85.
  assert largest["se_without_replacement"] < 0.92 * largest["se_replacement"]
  assert summary["se_slope_without_replacement"] < summary["se_slope"] - 0.01


def test_reused_examples_bias_the_gradient(summary):
  """§8.1.3: fresh examples give an unbiased gradient; reused ones underestimate the slope."""
  epoch1, se1 = summary["reuse_bias_epoch1"], summary["reuse_bias_epoch1_se"]
  epoch2, se2 = summary["reuse_bias_epoch2"], summary["reuse_bias_epoch2_se"]
  assert abs(epoch1) < 3 * se1 + 0.02
  assert epoch2 < -3 * se2
  assert epoch2 < epoch1 - 0.05


def test_the_bias_is_a_ratio_of_means_over_runs_with_its_delta_method_error(finished_run, summary):
  """Each epoch's bias is b̄ / s̄ over runs (b_r each run's mean bias, s_r its mean held-out
  slope, both stored divided by s̄); its standard error counts the pooled slope's own noise and
  its covariance with the bias: Var(b̄/s̄) ≈ (Var b̄ − 2R Cov(b̄, s̄) + R² Var s̄) / s̄²."""
  runs = load_config(CONFIGS / f"{NAME}_quick.py").num_seeds
  with np.load(finished_run / "params.npz") as arrays:
    bias, slope = arrays["reuse_bias"].astype(float), arrays["heldout_slope"].astype(float)
  assert bias.shape == slope.shape == (runs, 2)
  np.testing.assert_allclose(slope.mean(axis=0), 1.0, rtol=1e-5)  # divided by the pooled slope
  for epoch in (1, 2):
    b, s = bias[:, epoch - 1], slope[:, epoch - 1]
    ratio = b.mean() / s.mean()
    cov = np.cov(b, s) / runs  # the covariance of the means (b̄, s̄)
    variance = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / s.mean() ** 2
    assert summary[f"reuse_bias_epoch{epoch}"] == pytest.approx(ratio, rel=1e-5)
    assert summary[f"reuse_bias_epoch{epoch}_se"] == pytest.approx(np.sqrt(variance), rel=1e-5)
    assert summary[f"reuse_bias_epoch{epoch}_dof"] == runs - 1
  assert summary["reuse_bias_epoch1_abs"] == pytest.approx(abs(summary["reuse_bias_epoch1"]))


def test_each_run_starts_from_its_own_initialization():
  """The runs' errors are over initializations too: run r starts from the MLP of seed + r, so the
  runs' initial parameters differ (and run 0's is part 1's, seed `seed`)."""
  config = load_config(CONFIGS / f"{NAME}_quick.py")
  seeds = [config.seed + r for r in range(3)]
  _, inits = digits_tasks.mlps(seeds, **config.model)
  kernels = np.asarray(inits["output"]["kernel"][...])
  assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])
  first = digits_tasks.mlp(config.seed, **config.model).params["output"]["kernel"][...]
  np.testing.assert_array_equal(kernels[0], np.asarray(first))


def test_verdicts_judge_every_claim(summary):
  """σ/√n and the second-epoch bias reproduce; the first epoch's bias is judged against 10% of
  the slope, the second's against 0, each inconclusive where t_{0.975, runs − 1} of its standard
  errors (2.13 for the quick config's 16 runs) reach its threshold."""
  runs = load_config(CONFIGS / f"{NAME}_quick.py").num_seeds
  assert summary["reuse_bias_epoch1_dof"] == summary["reuse_bias_epoch2_dof"] == runs - 1 == 15
  assert summary["se_slope_error"] == pytest.approx(abs(summary["se_slope"] + 0.5))

  def judged(distance: float, se: float) -> str:
    return verdict(distance > 0) if abs(distance) > margin(runs - 1) * se else INCONCLUSIVE

  epoch1 = judged(0.1 - abs(summary["reuse_bias_epoch1"]), summary["reuse_bias_epoch1_se"])
  epoch2 = judged(-summary["reuse_bias_epoch2"], summary["reuse_bias_epoch2_se"])
  assert epoch2 == REPRODUCED
  assert summary["verdicts"] == {
    "se_slope": REPRODUCED,
    "se_slope_without_replacement": REPRODUCED,
    "reuse_bias_epoch1": epoch1,
    "reuse_bias_epoch2": epoch2,
  }


def test_minibatch_gradient_is_the_mean_of_per_example_gradients():
  """The identity part 1 rests on, checked against `jax.grad` of a minibatch loss."""
  config = load_config(CONFIGS / f"{NAME}_quick.py")
  data = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
  options = {k: v for k, v in config.model.to_dict().items() if k != "name"}
  model = models.functional(models.build_model("mlp", 64, 10, seed=0, **options))

  def loss(params, x, y):
    return losses.softmax_cross_entropy(model.apply(params, model.model_state, x, True)[0], y)

  idx = jnp.asarray([3, 5, 5, 100])  # a draw with a repeat, as under replacement
  batch = ravel_pytree(jax.grad(loss)(model.params, data.x_train[idx], data.y_train[idx]))[0]
  rows = [
    ravel_pytree(jax.grad(loss)(model.params, data.x_train[i : i + 1], data.y_train[i : i + 1]))[0]
    for i in np.asarray(idx)
  ]
  np.testing.assert_allclose(batch, np.mean(rows, axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  ("field", "value"),
  [("batch_sizes", "[4]"), ("num_draws", "1"), ("reuse_batch_size", "1000"), ("data.name", "x")],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field.split(".")[-1] in refused_field(tmp_path, capsys, NAME, field, value)
