"""The BatchNorm-spectrum experiment: its quick config through the CLI, and its claims."""

import json
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jaxopt_study import cli, registry
from jaxopt_study import data as data_lib
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, Results, margin, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "batchnorm_spectrum_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("batchnorm_spectrum")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


def test_batchnorm_lowers_the_top_eigenvalue_from_every_seed(finished_run):
  """Ghorbani et al. (2019, §4): without BatchNorm, larger outliers; with it, a lower λ_max. The
  claim is the geometric mean of the per-seed ratios, with the error of its log."""
  summary = json.loads((finished_run / "summary.json").read_text())
  rows = {r["member"]: r for r in read_csv(finished_run / "results.csv")}
  assert summary["num_seeds"] == 2
  plain, normed = ([rows[f"{name}@seed{s}"] for s in (0, 1)] for name in ("plain", "batchnorm"))
  ratios = [b["lambda_max"] / p["lambda_max"] for p, b in zip(plain, normed, strict=True)]
  assert all(0 < r < 1 for r in ratios)
  assert summary["lambda_max_ratio"] == pytest.approx(np.sqrt(ratios[0] * ratios[1]))
  se = summary["lambda_max_ratio"] * abs(np.log(ratios[0] / ratios[1])) / 2  # s/√2 of two logs
  assert summary["lambda_max_ratio_se"] == pytest.approx(se)
  for p, b in zip(plain, normed, strict=True):
    assert b["num_params"] == p["num_params"] + 2 * 2 * 16  # γ, β of two layers of 16 units


def test_batchnorm_trains_stably_at_rates_at_least_as_large(finished_run):
  summary = json.loads((finished_run / "summary.json").read_text())
  assert summary["max_stable_lr_ratio"] >= 1
  assert summary["max_stable_lr_at_grid_edge"] == []  # the grid brackets both largest rates
  assert (finished_run / "top_eigenvalues.png").is_file()


def test_the_largest_stable_rate_is_the_top_of_the_range_that_trains(finished_run):
  """Recomputed from each sweep's own results.csv: per seed, the largest rate such that it and
  every smaller rate end finite, not diverged, below the NLL of the best constant prediction (the
  training labels' entropy, computed here from scikit-learn's digits). A net that collapsed to a
  constant prediction (NLL ≈ ln 10, error 0.9, just below its start) counted as stable before:
  every largest stable rate of the quick runs was such a collapse."""
  config = json.loads((finished_run / "config.json").read_text())
  labels = data_lib.load_digits(config["data"]["test_fraction"], config["data"]["split_seed"])
  shares = np.bincount(np.asarray(labels.y_train)) / len(labels.y_train)
  entropy = -np.sum(shares * np.log(shares))
  assert entropy == pytest.approx(np.log(10), abs=1e-3)
  rows = {r["member"]: r for r in read_csv(finished_run / "results.csv")}
  for name in ("plain", "batchnorm"):
    sweep_rows = read_csv(finished_run / f"lr_sweep_{name}" / "results.csv")
    for seed in (0, 1):
      largest = float("nan")
      mine = sorted((r for r in sweep_rows if r["seed"] == seed), key=lambda r: r["learning_rate"])
      for r in mine:
        if r["diverged"] or not r["final_train_loss"] < entropy:
          break
        assert r["final_train_error"] < 0.8  # trained: far from a constant prediction's 0.9
        largest = r["learning_rate"]
      assert rows[f"{name}@seed{seed}"]["max_stable_lr"] == largest


def test_bad_config_is_refused(tmp_path, capsys):
  for setting in ("lr_sweep=[1.0]", "num_seeds=1", "outlier_search=100000", "lr_sweep_steps=0"):
    code = cli.main(["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", setting])
    assert code == 2
    assert setting.split("=")[0] in capsys.readouterr().err


def test_verdicts_judge_both_ratios_against_1_by_their_standard_errors(finished_run):
  """Each ratio on the log scale, |log ratio| against t_{0.975, dof} times the error of its log
  (error / ratio), dof one less than the seeds; an error of 0 (every seed on the same grid
  points) decides nothing with fewer than 6 seeds."""
  summary = json.loads((finished_run / "summary.json").read_text())
  assert summary["plain_max_stable_lr_at_grid_top"] is False  # the grid bounds the plain net
  assert summary["lambda_max_ratio_dof"] == summary["max_stable_lr_ratio_dof"] == 2 - 1

  def judged(name, sign):
    ratio, se, dof = (summary[f"{name}{suffix}"] for suffix in ("", "_se", "_dof"))
    if se <= 1e-5 * ratio and dof < MIN_DOF_WITHOUT_SPREAD:  # no spread, up to float rounding
      return None
    distance = sign * np.log(ratio)
    return None if abs(distance) <= margin(dof) * se / ratio else distance > 0

  assert summary["verdicts"] == {
    "lambda_max_ratio": verdict(judged("lambda_max_ratio", -1)),
    "max_stable_lr_ratio": verdict(judged("max_stable_lr_ratio", 1)),
  }


@pytest.mark.parametrize(
  "plain, normed, ratio, judged",
  [
    ((0.5,) * 6, (2.0,) * 6, 4.0, True),
    ((0.5, 0.5), (2.0, 2.0), 4.0, None),  # 4 ± 0 from 2 seeds: a sign test cannot tell
    ((2.0,) + (1.0,) * 5, (2.0,) * 6, 2.0 ** (5 / 6), None),  # one plain seed at the grid's top
    ((float("nan"),) * 6, (1.0,) * 6, 1.0 / 0.25, True),  # stable nowhere: below 0.25, a bound
    # seed 0 stable nowhere: its ratio 1 is at least 1, the others' 0.5 cannot refute the claim
    ((float("nan"),) + (1.0,) * 5, (0.25,) + (0.5,) * 5, 0.5 ** (5 / 6), None),
    ((float("nan"),) + (1.0,) * 5, (2.0,) * 6, 8.0 ** (1 / 6) * 2.0 ** (5 / 6), True),
    # both nets of seed 0 stable nowhere: no ratio at all (it once raised comparing None with 1)
    ((float("nan"),) + (1.0,) * 5, (float("nan"),) + (2.0,) * 5, None, None),
    ((1.0,) * 6, (0.5,) * 6, 0.5, False),
    ((0.5, 1.0), (1.0, 1.0), np.sqrt(2.0), None),  # ratios 2 and 1: log 0.35 ± 0.35, dof 1
  ],
)
def test_the_rate_ratio_is_paired_by_seed_and_judged_only_where_the_grid_bounds_it(
  plain, normed, ratio, judged
):
  """A plain net stable at the grid's top rate (ratio exactly 1 when BatchNorm is too) once read
  "not reproduced", and one stable at no rate (the strongest evidence) "inconclusive"."""
  experiment = registry.load("batchnorm_spectrum")
  config = ml_collections.ConfigDict({"lr_sweep": [0.25, 0.5, 1.0, 2.0], "num_seeds": len(plain)})
  table = [
    {"member": f"{name}@seed{seed}", "model": name, "seed": seed}
    | {"lambda_max": 1.0, "n_outliers": 0, "max_stable_lr": rate}
    for name, rates in (("plain", plain), ("batchnorm", normed))
    for seed, rate in enumerate(rates)
  ]
  summary = experiment.summarize(config, Results(table, []))
  assert summary["max_stable_lr_ratio"] == (None if ratio is None else pytest.approx(ratio))
  assert summary["max_stable_lr_ratio_dof"] == summary["lambda_max_ratio_dof"] == len(plain) - 1
  assert experiment.CRITERIA["max_stable_lr_ratio"](summary) is judged
  assert summary["max_stable_lr_censored_seeds"] == [s for s, p in enumerate(plain) if np.isnan(p)]
