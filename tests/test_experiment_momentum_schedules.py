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


def _held_out(rows: list[dict]) -> dict[tuple[str, str], dict[int, dict]]:
  """Per (method, μ_max) and seed, that seed's row at the learning rate whose median final
  training loss over the *other* seeds is lowest (a non-finite loss counts +inf; ties the first
  rate of the grid), by brute force."""
  by_key = {(r["method"], f"{r['momentum_max']:g}", r["learning_rate"], r["seed"]): r for r in rows}
  grid = sorted({r["learning_rate"] for r in rows})
  seeds = sorted({r["seed"] for r in rows})

  def median_without(method, mu, rate, seed):
    losses = [by_key[(method, mu, rate, s)]["final_train_loss"] for s in seeds if s != seed]
    return float(np.median([x if np.isfinite(x) else np.inf for x in losses]))

  picks = {}
  for method, mu in {(m, mu) for m, mu, _, _ in by_key}:
    for seed in seeds:
      scores = [median_without(method, mu, rate, seed) for rate in grid]
      picks.setdefault((method, mu), {})[seed] = by_key[(method, mu, grid[np.argmin(scores)], seed)]
  return picks


def test_held_out_rates_are_best_on_the_other_seeds(finished_run, summary):
  """Each seed's learning rate, per method and μ_max, is the one best on the other seeds (the
  lowest median final loss over them), recomputed here from results.csv; flagged where any is at
  its grid's edge, and every comparison using it inherits the flag."""
  rows = read_csv(finished_run / "results.csv")
  grid = sorted({row["learning_rate"] for row in rows})
  held_out = _held_out(rows)
  assert summary["held_out_learning_rates"] == {
    method: {
      mu: {str(int(seed)): row["learning_rate"] for seed, row in held_out[(method, mu)].items()}
      for mu in ("0", "0.9", "0.99")
    }
    for method in ("classical", "nesterov")
  }
  edge = summary["held_out_learning_rate_at_grid_edge"]
  assert edge == {
    method: {
      mu: any(row["learning_rate"] in (grid[0], grid[-1]) for row in picks.values())
      for (m, mu), picks in held_out.items()
      if m == method
    }
    for method in ("classical", "nesterov")
  }
  assert summary["loss_ratio_at_grid_edge"] == {
    f"{method} {high}/{low}": edge[method][high] or edge[method][low]
    for method in ("classical", "nesterov")
    for low, high in (("0", "0.9"), ("0.9", "0.99"))
  }
  assert summary["nesterov_over_classical_at_grid_edge"] == {
    mu: edge["nesterov"][mu] or edge["classical"][mu] for mu in ("0.9", "0.99")
  }


def test_verdicts_compare_each_step_up_in_momentum_and_the_two_methods(finished_run, summary):
  """Each comparison is the geometric mean over seeds of the per-seed ratio of the final losses,
  each seed at the rate best on the other seeds (the lowest median over them), with its standard
  error (delta method on the logs) and its degrees of freedom (seeds − 1), computed here from
  results.csv; judged below 1 on the log scale beyond t_{0.975, dof} standard errors unless a
  held-out rate is at its grid's edge."""
  rows = read_csv(finished_run / "results.csv")
  held_out = _held_out(rows)

  def at_best(method, mu):
    return {seed: row["final_train_loss"] for seed, row in held_out[(method, mu)].items()}

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
  """An all-seed best learning rate (the lowest median over all seeds, shown in the plot) that is
  the smallest or largest of the grid is flagged, per method and μ_max."""
  rows = read_csv(finished_run / "results.csv")
  grid = sorted({row["learning_rate"] for row in rows})
  rates = summary["best_learning_rate_by_momentum"]
  edge = summary["best_learning_rate_at_grid_edge"]
  assert edge == {
    method: {mu: rate in (grid[0], grid[-1]) for mu, rate in by_mu.items()}
    for method, by_mu in rates.items()
  }


@pytest.mark.parametrize(
  ("field", "value"),
  [("momentum_max", "[1.0]"), ("ramp_steps", "0"), ("learning_rate", "[]"), ("seeds", "[0]")],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)
