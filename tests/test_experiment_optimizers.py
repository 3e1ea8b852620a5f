"""The first-order optimizer comparison (§8.5.4): its quick config through the CLI, its verdict."""

import numpy as np
import pytest
from quick_runs import quick_config_and_table_fixtures, quick_run_fixtures, refused_field

from jaxopt_study.experiment import margin
from jaxopt_study.lab.adaptive_rate import adaptive_over_other, judged_on_fresh_seeds

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "optimizers"
finished_run, summary = quick_run_fixtures(NAME)
config, table = quick_config_and_table_fixtures(NAME)
OTHER = ("sgd", "momentum", "nesterov")  # the methods without an adaptive rate


def _losses(table, name, rate, phase="selection"):
  """The final training losses of optimizer `name` at `rate` in `phase`, in seed order."""
  rows = [
    r
    for r in table
    if r["optimizer"] == name and r["learning_rate"] == rate and r["phase"] == phase
  ]
  return np.array([r["final_train_loss"] for r in sorted(rows, key=lambda r: r["seed"])])


def test_every_member_trains_every_seed(config, table):
  seeds = sorted(config.seeds)
  for name, grid in config.optimizers.items():
    for rate in grid.learning_rate:
      rows = [
        r
        for r in table
        if r["optimizer"] == name and r["learning_rate"] == rate and r["phase"] == "selection"
      ]
      assert sorted(r["seed"] for r in rows) == seeds, (name, rate)


def test_the_two_family_winners_run_again_from_fresh_seeds(config, table, summary):
  """Picked on the selection seeds, judged on others: each winner at its best rate, once per
  evaluation seed, and nothing else in the evaluation phase."""
  rates = summary["best_learning_rate_by_optimizer"]
  winners = {summary["best_adaptive_rate_optimizer"], summary["best_other_optimizer"]}
  evaluated = [r for r in table if r["phase"] == "evaluation"]
  assert {(r["optimizer"], r["learning_rate"]) for r in evaluated} == {
    (name, rates[name]) for name in winners
  }
  for name in winners:
    seeds = sorted(r["seed"] for r in evaluated if r["optimizer"] == name)
    assert seeds == sorted(config.evaluation_seeds)
  assert not set(config.seeds) & set(config.evaluation_seeds)


def test_best_rates_have_the_lowest_median_over_seeds(config, table, summary):
  """Recomputed from results.csv: each optimizer's best rate and its median final loss."""
  for name, grid in config.optimizers.items():
    medians = {rate: np.median(_losses(table, name, rate)) for rate in grid.learning_rate}
    finite = {rate: m for rate, m in medians.items() if np.isfinite(m)}
    best = min(finite, key=finite.get)
    assert summary["best_learning_rate_by_optimizer"][name] == best, name
    assert summary["final_loss_by_optimizer"][name] == pytest.approx(finite[best], rel=1e-12)
    spread = summary["final_loss_over_seeds_by_optimizer"][name]
    losses = _losses(table, name, best)
    assert spread["n"] == len(config.seeds)
    assert spread["mean"] == pytest.approx(losses.mean(), rel=1e-12)
    assert spread["std"] == pytest.approx(losses.std(ddof=1), rel=1e-9)
  losses = summary["final_loss_by_optimizer"]
  assert summary["best_optimizer"] == min(losses, key=losses.get)


def test_the_judged_ratio_pairs_the_two_best_methods_by_seed(config, table, summary):
  """The best adaptive-rate method over the best other one: the geometric mean over seeds of
  the per-seed ratio of final losses, ratio · s/√n of the log ratios as its error, and the
  seeds less one as that error's degrees of freedom (on the evaluation seeds, which judge it,
  and on the selection seeds)."""
  losses = summary["final_loss_by_optimizer"]
  adaptive = min((k for k in losses if k not in OTHER), key=losses.get)
  other = min((k for k in losses if k in OTHER), key=losses.get)
  assert (summary["best_adaptive_rate_optimizer"], summary["best_other_optimizer"]) == (
    adaptive,
    other,
  )
  rates = summary["best_learning_rate_by_optimizer"]
  for phase, key, seeds in (
    ("evaluation", "adaptive_over_other_final_loss", config.evaluation_seeds),  # judged
    ("selection", "adaptive_over_other_final_loss_on_selection_seeds", config.seeds),
  ):
    ours = _losses(table, adaptive, rates[adaptive], phase)
    logs = np.log(ours / _losses(table, other, rates[other], phase))
    ratio = np.exp(logs.mean())
    assert summary[key] == pytest.approx(ratio, rel=1e-9)
    expected_se = ratio * logs.std(ddof=1) / np.sqrt(logs.size)
    assert summary[f"{key}_se"] == pytest.approx(expected_se, rel=1e-9)
    assert summary[f"{key}_dof"] == logs.size - 1 == len(seeds) - 1


def test_evaluation_seeds_the_selection_saw_are_refused(tmp_path, capsys):
  error = refused_field(tmp_path, capsys, NAME, "evaluation_seeds", "[1, 100]")
  assert "evaluation_seeds=[1, 100] share [1] with seeds" in error


def test_verdict_asks_whether_an_adaptive_rate_method_wins_beyond_the_seeds(summary):
  """Schaul et al. (2014): the adaptive-rate family is the most robust; judged on this task by
  whether its best method ends below the best other one beyond t_{0.975, dof} standard errors
  (4.30 for the quick config's 3 evaluation seeds), on the log scale of the ratio's
  delta-method error (|log r| against t · se / r), and undecided while any best rate sits at its
  grid's edge (a wider grid could change the ranking)."""
  adaptive = summary["best_optimizer"] not in OTHER
  assert summary["best_is_adaptive_rate"] == float(adaptive)
  edge = summary["best_learning_rate_at_grid_edge"]
  assert summary["any_best_rate_at_grid_edge"] == bool(edge)
  ratio = summary["adaptive_over_other_final_loss"]
  se = summary["adaptive_over_other_final_loss_se"]
  dof = summary["adaptive_over_other_final_loss_dof"]
  if edge or abs(np.log(ratio)) <= margin(dof) * se / ratio:
    expected = "inconclusive"
  else:
    expected = "reproduced" if ratio < 1 else "not reproduced"
  assert summary["verdicts"] == {"best_optimizer": expected}


def test_the_pick_and_its_judgement_keep_each_seed_sets_degrees_of_freedom():
  """`adaptive_rate`: the selection seeds' ratio, error and degrees of freedom (3 seeds: dof 2)
  renamed `*_on_selection_seeds`, the fresh seeds' (2 seeds: dof 1) judged; a diverged fresh
  run leaves no ratio, no error and no degrees of freedom; one selection seed, no error and no
  degrees of freedom."""
  picked = adaptive_over_other({"adam": [0.1, 0.2, 0.4], "sgd": [0.2, 0.4, 0.4]})
  assert (picked["best_adaptive_rate_optimizer"], picked["best_other_optimizer"]) == ("adam", "sgd")
  assert picked["adaptive_over_other_final_loss_dof"] == 2
  rows = [
    {"optimizer": k, "seed": seed, "final_train_loss": loss, "diverged": False}
    for k, losses in {"adam": (0.1, 0.3), "sgd": (0.3, 0.3)}.items()
    for seed, loss in zip((100, 101), losses, strict=True)
  ]
  judged = judged_on_fresh_seeds(picked, rows)
  key = "adaptive_over_other_final_loss"
  for suffix in ("", "_se", "_dof"):
    assert judged[f"{key}_on_selection_seeds{suffix}"] == picked[f"{key}{suffix}"]
  logs = np.log([0.1 / 0.3, 0.3 / 0.3])
  assert judged[key] == pytest.approx(np.exp(logs.mean()))
  assert judged[f"{key}_se"] == pytest.approx(np.exp(logs.mean()) * logs.std(ddof=1) / np.sqrt(2))
  assert judged[f"{key}_dof"] == 1
  # paired by seed, whatever the rows' order; a seed one winner lacks is left out of the pairs
  extra = {"optimizer": "sgd", "seed": 102, "final_train_loss": 0.9, "diverged": False}
  shuffled = judged_on_fresh_seeds(picked, [extra, *reversed(rows)])
  assert {k: shuffled[k] for k in judged} == judged
  rows[0] = {**rows[0], "final_train_loss": np.nan, "diverged": True}
  judged = judged_on_fresh_seeds(picked, rows)
  assert (judged[key], judged[f"{key}_se"], judged[f"{key}_dof"]) == (None, None, None)
  assert judged[f"{key}_on_selection_seeds_dof"] == 2
  alone = adaptive_over_other({"adam": [0.1], "sgd": [0.2]})
  assert alone[key] == pytest.approx(0.5)
  assert (alone[f"{key}_se"], alone[f"{key}_dof"]) == (None, None)
