"""The batch normalization experiment (§8.7.1): its protocol, its verdict logic on made-up runs,
and its quick config through the CLI."""

import json
import math
import sys

import ml_collections
import numpy as np
import pytest
from helpers import deciding_settings
from quick_runs import CONFIGS, quick_run_fixtures, refused_field

from jaxopt_study import registry
from jaxopt_study.config import load_config
from jaxopt_study.experiment import (
  INCONCLUSIVE,
  MIN_DOF_WITHOUT_SPREAD,
  NOT_REPRODUCED,
  REPRODUCED,
  Results,
  margin,
  verdict,
)
from jaxopt_study.results import read_csv

NAME = "batchnorm_training"
finished_run, summary = quick_run_fixtures(NAME)
EXPERIMENT = registry.load(NAME)
MODULE = sys.modules[type(EXPERIMENT).__module__]


def test_full_config_is_ioffe_and_szegedys_mnist_protocol():
  """§4.1, Fig. 1a: 3 hidden layers of 100 sigmoid units, minibatches of 60, plus a deeper net;
  rates on a ×2 grid; several seeds."""
  config = load_config(CONFIGS / f"{NAME}.py")
  EXPERIMENT.check(config)
  assert (config.width, config.depths[0], config.batch_size) == (100, 3, 60)
  assert max(config.depths) > 3
  assert MODULE.model_config(config, 3, False)["activation"] == "sigmoid"
  rates = np.asarray(config.learning_rates)
  np.testing.assert_allclose(rates[1:] / rates[:-1], 2.0)
  assert len(set(config.seeds)) >= 3


def _summary(times: dict, steps: int = 1000) -> dict:
  """The summary of made-up runs at depth 3: times[(network, rate)] lists each seed's steps to
  the target (None: never)."""
  config = ml_collections.ConfigDict(
    {"depths": [3], "seeds": [0, 1, 2], "steps": steps, "target_accuracy": 0.95}
  )
  config.learning_rates = sorted({rate for _, rate in times})
  table = (
    [
      {"part": "drift", "network": "plain", "seed": seed, "mean_percentile_drift": 0.4}
      for seed in range(3)
    ]
    + [
      {"part": "drift", "network": "batchnorm", "seed": seed, "mean_percentile_drift": drift}
      for seed, drift in enumerate((0.2, 0.1, 0.16))
    ]
    + [
      {"part": "run", "network": network, "depth": 3, "learning_rate": rate, "seed": seed}
      | {"steps_to_target": value}
      for (network, rate), values in times.items()
      for seed, value in enumerate(values)
    ]
  )
  summary = EXPERIMENT.summarize(config, Results(table, []))
  return summary | {"verdicts": EXPERIMENT.verdicts(summary)}


NEVER = [None, None, None]


def test_the_drift_ratio_is_paired_by_seed_with_the_error_of_its_log():
  """Plain drifts 0.4 in every seed, BatchNorm 0.2, 0.1 and 0.16: ratios 2, 4 and 2.5."""
  summary = _summary({("plain", 1.0): [10] * 3, ("batchnorm", 1.0): [10] * 3})
  logs = np.log([2.0, 4.0, 2.5])
  ratio = np.exp(logs.mean())
  assert summary["percentile_drift_ratio"] == pytest.approx(ratio)
  se = ratio * logs.std(ddof=1) / np.sqrt(3)
  assert summary["percentile_drift_ratio_se"] == pytest.approx(se)
  assert summary["percentile_drift"] == pytest.approx({"plain": 0.4, "batchnorm": 0.46 / 3})
  assert summary["percentile_drift_ratio_dof"] == 3 - 1
  # log 2.71 = 1.00 > t_{0.975, 2} · 0.36 / 2.71 = 4.30 · 0.20 = 0.88: reproduced on the log scale
  assert np.log(ratio) > margin(2) * se / ratio
  assert summary["verdicts"]["percentile_drift_ratio"] == REPRODUCED


def test_drift_is_the_range_over_training_in_units_of_the_final_spread():
  """Two units over three evaluations: the second has no final 15-85 spread and is left out."""
  path = np.zeros((3, 3, 2))
  path[:, :, 0] = [[0.0, 1.0, 2.0], [1.0, 1.5, 4.0], [0.5, 1.0, 2.5]]  # final spread 2
  path[:, :, 1] = [[0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [3.0, 3.0, 3.0]]
  drift = MODULE.relative_drift(path)
  np.testing.assert_allclose(drift[:, 0], [1.0 / 2, 0.5 / 2, 2.0 / 2])
  assert np.isnan(drift[:, 1]).all()


def _paired(numerator: list[float], denominator: list[float]) -> tuple[float, float]:
  """The geometric mean of the per-seed ratios and its standard error by the delta method."""
  logs = np.log(np.asarray(numerator, float) / np.asarray(denominator, float))
  ratio = float(np.exp(logs.mean()))
  return ratio, ratio * float(logs.std(ddof=1)) / np.sqrt(logs.size)


def test_ratios_pair_the_seeds_at_each_networks_best_rate():
  """Plain is best at rate 2 (median 400 steps), BatchNorm at 4 (median 100): per seed 400/100,
  380/90, 450/120. The largest rates that reach the target: plain 4 for every seed, BatchNorm 16,
  16 and 8: per seed 4, 4, 2. Each claim is the geometric mean of its per-seed ratios (one seed
  draws both networks), with the error of its log."""
  plain = {1.0: [600, 700, 650], 2.0: [400, 380, 450], 4.0: [500, 900, 800], 8.0: NEVER}
  normed = {1.0: [300, 320, 310], 2.0: [150, 160, 170], 4.0: [100, 90, 120], 8.0: [200, 250, 300]}
  times = {("plain", r): v for r, v in plain.items()} | {
    ("batchnorm", r): v for r, v in normed.items()
  }
  times |= {("plain", 16.0): NEVER, ("batchnorm", 16.0): [400, 500, None], ("plain", 32.0): NEVER}
  times |= {("batchnorm", 32.0): NEVER}
  summary = _summary(times)
  assert summary["best_learning_rate"] == {"plain": {"3": 2.0}, "batchnorm": {"3": 4.0}}
  assert summary["held_out_learning_rates"] == {  # every pair of seeds picks the same rates
    "plain": {"3": dict.fromkeys(("0", "1", "2"), 2.0)},
    "batchnorm": {"3": dict.fromkeys(("0", "1", "2"), 4.0)},
  }
  ratio, se = _paired([400, 380, 450], [100, 90, 120])
  assert summary["steps_to_target_ratio"]["3"] == pytest.approx(ratio)  # 3.99
  assert summary["steps_to_target_ratio_se"]["3"] == pytest.approx(se)  # 0.13
  assert summary["max_trainable_learning_rate"] == {"plain": {"3": 4.0}, "batchnorm": {"3": 16.0}}
  ratio, se = _paired([16, 16, 8], [4, 4, 4])
  assert summary["max_lr_ratio"]["3"] == pytest.approx(ratio)  # 3.17
  assert summary["max_lr_ratio_se"]["3"] == pytest.approx(se)  # 0.73
  assert summary["steps_to_target_ratio_dof"] == summary["max_lr_ratio_dof"] == {"3": 3 - 1}
  # log 3.17 = 1.15 > 4.30 · 0.73 / 3.17 = 0.99 (on the ratio scale 3.17 − 1 < 4.30 · 0.73)
  assert np.log(ratio) > margin(2) * se / ratio
  assert summary["verdicts"] == {
    "percentile_drift_ratio": REPRODUCED,
    "steps_to_target_ratio": REPRODUCED,
    "max_lr_ratio": REPRODUCED,
  }


def test_each_seed_is_timed_at_the_rate_best_on_the_other_seeds():
  """Leave one seed out. BatchNorm's rate 2 has the fewest median steps over all three seeds
  (100, shown as its best rate), but seeds 0 and 1 are judged at rate 4, the best on their other
  seeds (the median of 100 and 300 is 200 > 120), and seed 2 at rate 2 (the median of 100 and
  100): 120, 120 and 300 steps, not the 100, 100 and 300 of the rate picked on all of them.
  Plain's rate 2 is best on every pair of seeds. The ratio's seeds: 600/120, 500/120, 700/300."""
  plain = {1.0: [800] * 3, 2.0: [600, 500, 700], 4.0: [900] * 3, 8.0: NEVER}
  normed = {1.0: [500] * 3, 2.0: [100, 100, 300], 4.0: [120] * 3, 8.0: NEVER}
  times = {("plain", r): v for r, v in plain.items()}
  summary = _summary(times | {("batchnorm", r): v for r, v in normed.items()})
  assert summary["best_learning_rate"] == {"plain": {"3": 2.0}, "batchnorm": {"3": 2.0}}
  assert summary["steps_to_target"] == {"plain": {"3": 600}, "batchnorm": {"3": 100}}
  assert summary["held_out_learning_rates"] == {
    "plain": {"3": {"0": 2.0, "1": 2.0, "2": 2.0}},
    "batchnorm": {"3": {"0": 4.0, "1": 4.0, "2": 2.0}},
  }
  ratio, se = _paired([600, 500, 700], [120, 120, 300])
  assert summary["steps_to_target_ratio"]["3"] == pytest.approx(ratio)  # 3.65, in-sample 4.12
  assert summary["steps_to_target_ratio_se"]["3"] == pytest.approx(se)  # 0.84, in-sample 1.19
  assert summary["steps_to_target_ratio_dof"]["3"] == 2
  assert summary["steps_to_target_ratio_at_grid_edge"] == {"3": False}
  assert summary["steps_to_target_censored_seeds"] == {"3": {"plain": [], "batchnorm": []}}
  # log(3.65 / 2) = 0.60 < t_{0.975, 2} · 0.84 / 3.65 = 0.99
  assert abs(np.log(ratio / 2.0)) <= margin(2) * se / ratio
  assert summary["verdicts"]["steps_to_target_ratio"] == INCONCLUSIVE


def test_a_seed_censored_at_its_held_out_rate_bounds_its_ratio():
  """BatchNorm's seed 2 never reaches the target at rate 2, the best on seeds 0 and 1: its time
  is at least the budget, an upper bound on its ratio, so the claim has no value (the rate picked
  on all seeds would have counted it as 1000 steps, silently). Plain's seed 2, censored at rate 2,
  the best on seeds 0 and 1, makes the ratio a lower bound: 800/100, 800/110, 1000/120 (seeds 0
  and 1 at rate 1, the best on the other two once seed 2's median at rate 2 is +inf), above 2
  beyond its margin."""
  normed = {1.0: [500] * 3, 2.0: [100, 100, None], 4.0: [120] * 3, 8.0: NEVER}
  plain = {1.0: [800] * 3, 2.0: [600, 500, 700], 4.0: [900] * 3, 8.0: NEVER}
  times = {("plain", r): v for r, v in plain.items()}
  summary = _summary(times | {("batchnorm", r): v for r, v in normed.items()})
  assert summary["best_learning_rate"]["batchnorm"] == {"3": 2.0}
  assert summary["held_out_learning_rates"]["batchnorm"] == {"3": {"0": 4.0, "1": 4.0, "2": 2.0}}
  assert summary["steps_to_target_censored"] == {"3": ["batchnorm"]}
  assert summary["steps_to_target_censored_seeds"] == {"3": {"plain": [], "batchnorm": [2]}}
  assert summary["steps_to_target_ratio"]["3"] is None
  assert summary["steps_to_target_ratio_lower_bound"]["3"] is None
  assert summary["verdicts"]["steps_to_target_ratio"] == INCONCLUSIVE
  plain |= {0.5: NEVER, 2.0: [600, 500, None]}
  normed = {0.5: NEVER, 1.0: [500] * 3, 2.0: [100, 110, 120], 4.0: [300] * 3, 8.0: NEVER}
  times = {("plain", r): v for r, v in plain.items()}
  bounded = _summary(times | {("batchnorm", r): v for r, v in normed.items()})
  assert bounded["held_out_learning_rates"]["plain"] == {"3": {"0": 1.0, "1": 1.0, "2": 2.0}}
  assert bounded["steps_to_target_censored"] == {"3": ["plain"]}
  assert bounded["steps_to_target_censored_seeds"] == {"3": {"plain": [2], "batchnorm": []}}
  ratio, se = _paired([800, 800, 1000], [100, 110, 120])
  assert bounded["steps_to_target_ratio_lower_bound"]["3"] == pytest.approx(ratio)  # 7.9
  assert bounded["steps_to_target_ratio"]["3"] == pytest.approx(ratio)
  assert bounded["steps_to_target_ratio_se"]["3"] == pytest.approx(se)  # 0.32
  assert bounded["steps_to_target_ratio_at_grid_edge"] == {"3": False}
  assert np.log(ratio / 2.0) > margin(2) * se / ratio  # 1.37 > 4.30 · 0.32 / 7.9 = 0.17
  assert bounded["verdicts"]["steps_to_target_ratio"] == REPRODUCED


def test_a_best_rate_or_a_largest_trainable_rate_at_the_grids_edge_is_refused():
  """BatchNorm's best rate and largest trainable rate are the top of the grid: the grid does not
  bracket them, so both claims are inconclusive whatever their numbers."""
  times = {("plain", 1.0): [500, 500, 500], ("plain", 2.0): [300, 310, 290], ("plain", 4.0): NEVER}
  times |= {("batchnorm", 1.0): [200] * 3, ("batchnorm", 2.0): [100] * 3}
  times |= {("batchnorm", 4.0): [50, 51, 52]}
  summary = _summary(times)
  assert summary["steps_to_target_ratio"]["3"] == pytest.approx(
    _paired([300, 310, 290], [50, 51, 52])[0]
  )
  assert summary["steps_to_target_ratio_at_grid_edge"] == {"3": True}
  assert summary["max_lr_ratio_at_grid_edge"] == {"3": True}
  assert summary["verdicts"]["steps_to_target_ratio"] == INCONCLUSIVE
  assert summary["verdicts"]["max_lr_ratio"] == INCONCLUSIVE


def test_a_plain_net_that_never_gets_there_counts_as_the_budget():
  """Censored plain runs: the ratio is a lower bound (budget / BatchNorm's median), listed as
  censored; no plain rate trains, so there is no rate ratio."""
  times = {("plain", r): NEVER for r in (1.0, 2.0, 4.0)}
  times |= {("batchnorm", 1.0): [300] * 3, ("batchnorm", 2.0): [240, 250, 260]}
  times |= {("batchnorm", 4.0): NEVER}
  summary = _summary(times, steps=1000)
  assert summary["steps_to_target_censored"] == {"3": ["plain"]}
  assert summary["steps_to_target_ratio"]["3"] == pytest.approx(
    _paired([1000] * 3, [240, 250, 260])[0]
  )
  assert summary["max_lr_ratio"]["3"] is None
  assert summary["max_lr_ratio_dof"]["3"] is None  # no seed trains the plain net at any rate
  assert summary["steps_to_target_ratio_dof"]["3"] == 3 - 1
  assert summary["verdicts"]["steps_to_target_ratio"] == REPRODUCED
  assert summary["verdicts"]["max_lr_ratio"] == INCONCLUSIVE
  assert summary["steps_to_target_ratio_lower_bound"]["3"] == pytest.approx(
    _paired([1000] * 3, [240, 250, 260])[0]
  )
  slow = _summary(times | {("batchnorm", 1.0): [700] * 3, ("batchnorm", 2.0): [600, 610, 620]})
  assert slow["steps_to_target_ratio_lower_bound"]["3"] == pytest.approx(
    _paired([1000] * 3, [600, 610, 620])[0]
  )
  assert slow["steps_to_target_ratio"]["3"] is None  # at least 1.6: decides nothing about 2
  assert slow["verdicts"]["steps_to_target_ratio"] == INCONCLUSIVE
  uncensored = _summary(
    times
    | {("batchnorm", 1.0): [700] * 3, ("batchnorm", 2.0): [600] * 3}
    | {("plain", 2.0): [900, 920, 910]}
  )
  assert uncensored["verdicts"]["steps_to_target_ratio"] == NOT_REPRODUCED  # about 910/600 < 2


@pytest.mark.slow  # runs the quick config end to end
def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 3


@pytest.mark.slow  # runs the quick config end to end
def test_batchnorm_steadies_the_unit_input(summary):
  """Ioffe & Szegedy (2015) Fig. 1: with BatchNorm the input distribution of a sigmoid drifts
  less during training (here, relative to its final 15-85 spread: at least 1.5× less)."""
  assert summary["percentile_drift_ratio"] > 1.5
  assert summary["percentile_drift_ratio_se"] > 0  # over the seeds


def _reached(run: dict) -> bool:  # an empty cell of results.csv: never reached the target
  return run["steps_to_target"] not in (None, "")


def _held_out(runs: list[dict]) -> dict:
  """One network's runs, left one seed out by hand: per seed, its run at the rate whose median
  steps over the other seeds (never reached: +inf) is fewest (the first such rate in table order;
  no run where no rate's median is finite)."""
  at = {(r["learning_rate"], r["seed"]): r for r in runs}
  rates = list(dict.fromkeys(r["learning_rate"] for r in runs))
  seeds = sorted({r["seed"] for r in runs})

  def time(run) -> float:
    return run["steps_to_target"] if _reached(run) else math.inf

  picks = {}
  for seed in seeds:
    medians = [np.median([time(at[rate, s]) for s in seeds if s != seed]) for rate in rates]
    if np.isfinite(min(medians)):
      picks[seed] = at[rates[int(np.argmin(medians))], seed]
  return picks


@pytest.mark.slow  # runs the quick config end to end
def test_quick_run_brackets_both_networks_and_judges_by_the_criteria(finished_run, summary):
  """Both networks reach the target at interior rates of the grid (the search brackets them) and
  the verdicts follow the numbers, each seed at the rate best on the other seeds (recomputed here
  by hand): at least 2× fewer steps and a larger trainable rate, each beyond t_{0.975, dof}
  standard errors of the seeds' log ratios (dof 2 with the quick config's three seeds: 4.30
  errors), judged on the log scale."""
  assert not summary["steps_to_target_ratio_at_grid_edge"]["3"]
  assert not summary["max_lr_ratio_at_grid_edge"]["3"]
  runs = [r for r in read_csv(finished_run / "results.csv") if r["part"] == "run"]
  config = json.loads((finished_run / "config.json").read_text())
  budget, seeds = config["steps"], sorted(config["seeds"])
  networks = ("plain", "batchnorm")
  picks = {n: _held_out([r for r in runs if r["network"] == n]) for n in networks}
  assert summary["held_out_learning_rates"] == {
    n: {"3": {str(s): picks[n][s]["learning_rate"] if s in picks[n] else None for s in seeds}}
    for n in networks
  }

  censored = {
    n: [s for s in seeds if s not in picks[n] or not _reached(picks[n][s])] for n in networks
  }
  assert summary["steps_to_target_censored_seeds"] == {"3": censored}
  assert summary["steps_to_target_censored"] == {"3": [n for n in networks if censored[n]]}
  steps = {
    n: [budget if s in censored[n] else picks[n][s]["steps_to_target"] for s in seeds]
    for n in networks
  }
  ratio, se = _paired(steps["plain"], steps["batchnorm"])
  assert summary["steps_to_target_ratio_se"]["3"] == pytest.approx(se, rel=1e-9)
  kept = not censored["batchnorm"] and (not censored["plain"] or ratio > 2.0)
  assert summary["steps_to_target_ratio"]["3"] == (pytest.approx(ratio, rel=1e-9) if kept else None)

  def largest(name, seed):  # the largest rate whose run reaches the target
    mine = [m for m in runs if (m["network"], m["seed"]) == (name, seed) and _reached(m)]
    return max(m["learning_rate"] for m in mine)

  rates = {n: [largest(n, s) for s in seeds] for n in networks}
  ratio, se = _paired(rates["batchnorm"], rates["plain"])
  assert summary["max_lr_ratio"]["3"] == pytest.approx(ratio)
  assert summary["max_lr_ratio_se"]["3"] == pytest.approx(se)
  dof = len(seeds) - 1
  assert summary["percentile_drift_ratio_dof"] == dof == 2
  assert summary["steps_to_target_ratio_dof"] == summary["max_lr_ratio_dof"] == {"3": dof}

  def judged(name, threshold, key=None):
    ratio, se, dof = (
      summary[f"{name}{suffix}"] if key is None else summary[f"{name}{suffix}"][key]
      for suffix in ("", "_se", "_dof")
    )
    if se <= 1e-5 * ratio and dof < MIN_DOF_WITHOUT_SPREAD:  # no spread, up to float rounding
      return None
    distance = np.log(ratio / threshold)
    settings = 1  # Bonferroni's count, against the claim: the settings that can decide
    if key is not None:
      values, errors, dofs = (summary[f"{name}{suffix}"] for suffix in ("", "_se", "_dof"))
      flags = summary[f"{name}_at_grid_edge"]
      settings = deciding_settings(values, errors, dofs, flags, ratio=True)
    needed = margin(dof) if distance > 0 else margin(dof, settings)
    return None if abs(distance) <= needed * se / ratio else distance > 0

  assert summary["verdicts"] == {
    "percentile_drift_ratio": verdict(judged("percentile_drift_ratio", 1.0)),
    "steps_to_target_ratio": verdict(judged("steps_to_target_ratio", 2.0, "3")),
    "max_lr_ratio": verdict(judged("max_lr_ratio", 1.0, "3")),
  }


@pytest.mark.slow  # starts the CLI
@pytest.mark.parametrize(
  ("field", "value"),
  [
    ("unit", 99),
    ("learning_rates", [1.0, 3.0, 9.0]),  # coarser than ×2
    ("learning_rates", [1.0, 2.0]),
    ("seeds", [0]),
    ("seeds", [1, 1]),
    ("eval_every", 7),
    ("target_accuracy", 0.0),
  ],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
