"""Sutskever et al. (2013) momentum schedules on a digits autoencoder: quick config, its claims."""

import sys

import numpy as np
import pytest
from helpers import deciding_settings
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study import registry
from jaxopt_study.experiment import margin, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "momentum_schedules"
finished_run, summary = quick_run_fixtures(NAME)


def _experiment():
  """The module of experiments/momentum_schedules.py, as the registry loaded it."""
  return sys.modules[type(registry.load(NAME)).__module__]


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html", "train_loss.png"} <= names


def test_sutskever_schedule():
  """μ_t = min(1 − 2^(−1−log2(⌊t/250⌋+1)), μ_max): 1/2, 3/4, 5/6, 7/8, ... capped at μ_max."""
  schedule = _experiment().sutskever_schedule(250, 0.9)
  steps = [0, 249, 250, 500, 750, 999, 1000, 5000]
  expected = [0.5, 0.5, 0.75, 1 - 1 / 6, 0.875, 0.875, 0.9, 0.9]
  np.testing.assert_allclose([float(schedule(t)) for t in steps], expected, rtol=1e-6)
  assert float(_experiment().sutskever_schedule(250, 0.0)(1000)) == 0.0


def test_without_momentum_both_methods_are_sgd(summary):
  """μ_max = 0: classical and Nesterov momentum are both plain SGD, step for step."""
  losses = summary["final_loss_by_momentum"]
  assert losses["classical"]["0"] == losses["nesterov"]["0"]


def test_momentum_trains_the_autoencoder_further(summary):
  """Sutskever et al. (2013): with momentum the deep autoencoder reaches a lower loss."""
  for method, losses in summary["final_loss_by_momentum"].items():
    assert min(losses["0.9"], losses["0.99"]) < 0.9 * losses["0"], method


def test_nesterov_at_high_momentum(summary):
  """Sutskever et al. (2013): at μ_max = 0.99 Nesterov momentum does at least as well as classical
  (at this scale classical momentum gains nothing from 0.99 over 0.9; Nesterov does)."""
  losses = summary["final_loss_by_momentum"]
  assert losses["nesterov"]["0.99"] <= losses["classical"]["0.99"]
  assert losses["nesterov"]["0.99"] < losses["nesterov"]["0.9"]


def test_verdicts_compare_each_step_up_in_momentum_and_the_two_methods(finished_run, summary):
  """Each comparison is the geometric mean over seeds of the per-seed ratio of the final losses
  at the two best rates (the lowest median over seeds), with its standard error (delta method on
  the logs) and its degrees of freedom (seeds − 1), computed here from results.csv; judged below 1
  on the log scale beyond t_{0.975, dof} standard errors unless a best rate is at its grid's
  edge."""
  rows = read_csv(finished_run / "results.csv")
  rates = summary["best_learning_rate_by_momentum"]

  def at_best(method, mu):
    return {
      r["seed"]: r["final_train_loss"]
      for r in rows
      if r["method"] == method
      and f"{r['momentum_max']:g}" == mu
      and r["learning_rate"] == rates[method][mu]
    }

  def paired(top, bottom):
    logs = np.log([top[s] / bottom[s] for s in sorted(top)])
    ratio = np.exp(logs.mean())
    return ratio, ratio * logs.std(ddof=1) / np.sqrt(logs.size)

  seeds = sorted({r["seed"] for r in rows})
  assert summary["seeds"] == seeds and len(seeds) >= 2
  for method, by_mu in summary["final_loss_by_momentum"].items():
    for mu, loss in by_mu.items():
      assert loss == pytest.approx(np.mean(list(at_best(method, mu).values())))
  for method in ("classical", "nesterov"):
    for low, high in (("0", "0.9"), ("0.9", "0.99")):
      key = f"{method} {high}/{low}"
      mean, error = paired(at_best(method, high), at_best(method, low))
      assert summary["loss_ratio_to_smaller_momentum"][key] == pytest.approx(mean)
      assert summary["loss_ratio_to_smaller_momentum_se"][key] == pytest.approx(error)
      assert summary["loss_ratio_to_smaller_momentum_dof"][key] == len(seeds) - 1 == 2
  assert set(summary["nesterov_over_classical_final_loss"]) == {"0.9", "0.99"}  # 0: both SGD
  for mu in ("0.9", "0.99"):
    mean, error = paired(at_best("nesterov", mu), at_best("classical", mu))
    assert summary["nesterov_over_classical_final_loss"][mu] == pytest.approx(mean)
    assert summary["nesterov_over_classical_final_loss_se"][mu] == pytest.approx(error)
    assert summary["nesterov_over_classical_final_loss_dof"][mu] == len(seeds) - 1
  assert summary["verdicts"] == {
    "final_loss_by_momentum": _judged(summary, "loss_ratio_to_smaller_momentum", "loss_ratio"),
    "nesterov_over_classical_final_loss": _judged(
      summary, "nesterov_over_classical_final_loss", "nesterov_over_classical"
    ),
  }


def _judged(summary: dict, key: str, flags: str) -> str:
  """A ratio r whose log lies more than t_{0.975, dof} errors of the log (se / r, the delta
  method's) below 0 holds, one beyond t_{1 − 0.025/k, dof} errors above fails (k settings that
  can decide: Bonferroni's margin), one nearer or whose best rate sits at its grid's edge cannot
  decide; any failure fails the claim."""
  ratios, errors, dofs = summary[key], summary[f"{key}_se"], summary[f"{key}_dof"]
  at_edge = summary[f"{flags}_at_grid_edge"]
  count = deciding_settings(ratios, errors, dofs, at_edge, ratio=True)
  needed = {k: margin(dofs[k]) if r < 1 else margin(dofs[k], count) for k, r in ratios.items()}
  judged = [
    None if at_edge[k] or abs(np.log(r)) <= needed[k] * errors[k] / r else bool(r < 1)
    for k, r in ratios.items()
  ]
  if False in judged:
    return verdict(False)
  return verdict(None if None in judged else True)


def test_best_rates_at_the_grid_edge_are_flagged(finished_run, summary):
  """A best learning rate that is the smallest or largest of the grid is flagged, per method and
  μ_max, and every comparison that uses it inherits the flag."""
  rows = read_csv(finished_run / "results.csv")
  grid = sorted({row["learning_rate"] for row in rows})
  rates = summary["best_learning_rate_by_momentum"]
  edge = summary["best_learning_rate_at_grid_edge"]
  assert edge == {
    method: {mu: rate in (grid[0], grid[-1]) for mu, rate in by_mu.items()}
    for method, by_mu in rates.items()
  }
  assert summary["nesterov_over_classical_at_grid_edge"] == {
    mu: edge["nesterov"][mu] or edge["classical"][mu] for mu in ("0.9", "0.99")
  }


@pytest.mark.parametrize(
  ("field", "value"),
  [("momentum_max", "[1.0]"), ("ramp_steps", "0"), ("learning_rate", "[]"), ("seeds", "[0]")],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)
