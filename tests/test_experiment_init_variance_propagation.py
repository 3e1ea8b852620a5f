"""The init variance propagation experiment (§8.4): its quick config through the CLI, its claims."""

import json
import sys

import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study import registry
from jaxopt_study.experiment import INCONCLUSIVE, MIN_DOF_WITHOUT_SPREAD, margin, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "init_variance_propagation"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 5


def test_relu_under_glorot_halves_the_variance_per_layer(summary):
  """He et al. (2015) §2.2: with Var(W) = 1/n, each ReLU layer halves Var(z)."""
  assert summary["relu_glorot_activation_decay"] == pytest.approx(0.5, abs=0.05)
  depth = summary["deepest_depth"]
  assert summary["relu_glorot_activation_ratio_theory"] == pytest.approx(2.0 ** -(depth - 1))
  # End to end within a factor 3 of 2^-(L-1) (finite-width fluctuation), 1e5 below He's.
  ratio = summary["relu_glorot_activation_ratio"] / summary["relu_glorot_activation_ratio_theory"]
  assert 1 / 3 < ratio < 3


def test_relu_under_he_keeps_the_variance(summary):
  """He et al. (2015) eq. 10: Var(W) = 2/n keeps Var(z_l) and Var(∂ℓ/∂z_l) through depth."""
  assert summary["relu_he_activation_decay"] == pytest.approx(1.0, abs=0.05)
  # A single deep net's variance is log-normal at finite width: within a factor 3 of 1.
  assert 1 / 3 < summary["relu_he_activation_ratio"] < 3
  assert 1 / 3 < summary["relu_he_gradient_ratio"] < 3
  assert summary["relu_he_activation_ratio"] > 1e4 * summary["relu_glorot_activation_ratio"]


def test_critical_scale_of_relu_is_root_two(summary):
  assert summary["relu_critical_init_scale"] == pytest.approx(np.sqrt(2.0), abs=0.1)


def test_lsuv_gives_unit_variance(summary):
  """LSUV fits every layer to |Var − 1| ≤ 0.05 on its batch; on another batch within 0.25."""
  assert summary["lsuv_max_variance_error"] < 0.25
  assert summary["activation_ratio_by_init"]["relu"]["lsuv"] == pytest.approx(1.0, abs=0.25)


def _below(value: float, threshold: float, standard_error: float = 0.0, dof=None) -> str:
  """The verdict of `value < threshold`, with a standard error inconclusive within
  t_{0.975, dof} of them (and for an error of 0 on fewer than 5 degrees of freedom)."""
  if dof is None:  # no error bar asked for: the value alone
    return verdict(value < threshold)
  if standard_error <= 1e-5 * abs(value) and dof < MIN_DOF_WITHOUT_SPREAD:  # 0, up to rounding
    return INCONCLUSIVE
  if abs(value - threshold) <= margin(dof) * standard_error:
    return INCONCLUSIVE
  return verdict(value < threshold)


def test_verdicts_judge_every_claim(finished_run, summary):
  """The relative errors the verdicts read, with standard errors over seeds (three seeds in the
  quick config: wide ones, on 2 degrees of freedom, a margin of 4.30 of them), and the verdicts
  they give."""
  assert summary["relu_glorot_decay_rel_error"] == pytest.approx(
    abs(summary["relu_glorot_activation_decay"] / 0.5 - 1)
  )
  config = json.loads((finished_run / "config.json").read_text())
  key = ("initializer", "relu", max(config["depths"]), "he_normal")
  rows = read_csv(finished_run / "results.csv")
  (he,) = [r for r in rows if (r["kind"], r["activation"], r["depth"], r["init"]) == key]
  assert summary["relu_he_activation_abs_log2_ratio"] == pytest.approx(
    abs(he["log2_activation_ratio_seed_mean"])
  )
  assert summary["relu_critical_init_scale_rel_error"] == pytest.approx(
    abs(summary["relu_critical_init_scale"] / np.sqrt(2) - 1)
  )
  assert summary["relu_glorot_decay_rel_error_se"] > 0
  assert summary["relu_glorot_decay_rel_error_dof"] == config["num_seeds"] - 1 == 2
  assert summary["relu_he_activation_abs_log2_ratio_dof"] == config["num_seeds"] - 1
  assert summary["verdicts"] == {
    "relu_glorot_activation_decay": _below(
      summary["relu_glorot_decay_rel_error"],
      0.1,
      summary["relu_glorot_decay_rel_error_se"],
      summary["relu_glorot_decay_rel_error_dof"],
    ),
    "relu_he_activation_ratio": _below(
      summary["relu_he_activation_abs_log2_ratio"],
      1.0,
      summary["relu_he_activation_abs_log2_ratio_se"],
      summary["relu_he_activation_abs_log2_ratio_dof"],
    ),
    "lsuv_max_variance_error": _below(summary["lsuv_max_variance_error"], 0.05),
    "relu_critical_init_scale": _below(summary["relu_critical_init_scale_rel_error"], 0.05),
  }


def test_the_judged_estimates_and_their_errors_come_from_the_same_seeds():
  """Two seeds of a 4-layer net, variances (seeds, layers) log-normal around 1: the judged factor
  and log2 ratio are the means of each seed's value, and their standard errors those values'
  s/√n; the ratio of the mean variances is another, biased estimate (kept for the plots)."""
  module = sys.modules[type(registry.load(NAME)).__module__]
  forward = np.asarray([[1.0, 4.0, 2.0, 8.0, 3.0], [1.0, 0.5, 0.5, 0.25, 3.0]])
  row = module.table_row("m", "initializer", "relu", 4, "he_normal", 1.0, forward, forward)
  log2_ratios = np.log2(forward[:, -2] / forward[:, 0])  # the last column is the output layer
  slopes = [np.polyfit(np.arange(4), np.log(v[:-1]), 1)[0] for v in forward]
  assert row["log2_activation_ratio_seed_mean"] == pytest.approx(log2_ratios.mean())  # 1.0
  assert row["log2_activation_ratio_se"] == pytest.approx(np.std(log2_ratios, ddof=1) / np.sqrt(2))
  assert row["activation_factor_per_layer_seed_mean"] == pytest.approx(np.mean(np.exp(slopes)))
  assert row["activation_factor_per_layer_se"] == pytest.approx(
    np.std(np.exp(slopes), ddof=1) / np.sqrt(2)
  )
  assert row["activation_factor_per_layer_dof"] == row["log2_activation_ratio_dof"] == 2 - 1
  assert np.log2(row["activation_ratio"]) == pytest.approx(np.log2(4.125))  # not 1.0


@pytest.mark.parametrize(
  ("field", "value"),
  [
    ("depths", [1]),
    ("activations", ["sigmoid"]),
    ("initializers", ["glorot_uniform", "he_normal", "kaiming"]),
    ("lsuv_tol", 0.0),
  ],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
