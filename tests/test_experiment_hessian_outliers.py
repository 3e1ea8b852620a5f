"""The Hessian-outliers experiment: its quick config through the CLI, its protocol and verdicts."""

import json
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jaxopt_study import cli, registry
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, Results, margin, verdict
from jaxopt_study.hessian import outliers
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "hessian_outliers_quick.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("hessian_outliers")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  return out


@pytest.fixture(scope="module")
def summary(finished_run):
  return json.loads((finished_run / "summary.json").read_text())


def test_run_writes_its_files(finished_run):
  for name in ("results.csv", "history.csv", "summary.json", "report.html"):
    assert (finished_run / name).is_file(), name
  for name in ("top_eigenvalues.png", "outliers_vs_classes.png", "spectrum_histogram.png"):
    assert (finished_run / name).is_file(), name


def test_each_class_count_is_trained_to_zero_training_error_on_its_classes(finished_run, summary):
  """The protocol: one network per C with C outputs (N grows by width + 1 per class), trained
  on the digits 0 … C − 1 until its training 0-1 error is (almost) zero."""
  table = read_csv(finished_run / "results.csv")
  config = json.loads((finished_run / "config.json").read_text())
  assert sorted({r["classes"] for r in table}) == sorted(config["classes"]) == summary["classes"]
  sizes = {r["classes"]: r["num_params"] for r in table}
  width = config["model"]["width"]
  for c, n in sizes.items():
    assert n == sizes[10] - (10 - c) * (width + 1)
  assert max(summary["final_train_error_by_classes"].values()) <= 0.005


def test_counts_follow_the_gap_rule_and_the_slope_is_the_least_squares_one(finished_run, summary):
  table = read_csv(finished_run / "results.csv")
  config = json.loads((finished_run / "config.json").read_text())
  spectra = read_curves(finished_run / "history.csv", "eigenvalue")
  for row in table:
    steps, values = spectra[row["member"]]
    assert steps == list(range(1, int(row["num_params"]) + 1))  # every eigenvalue, λ_k at step k
    assert np.all(np.diff(values) <= 0)
    assert outliers.count_outliers(values, config["outlier_search"]).count == row["n_outliers"]
  classes = np.asarray([r["classes"] for r in table], float)
  counts = np.asarray([r["n_outliers"] for r in table], float)
  assert summary["outlier_slope_vs_classes"] == pytest.approx(np.polyfit(classes, counts, 1)[0])
  assert summary["outliers_by_classes"] == {
    str(c): float(np.median(counts[classes == c])) for c in config["classes"]
  }


def test_the_gram_eigenvalues_are_below_the_hessian_outliers(finished_run, summary):
  """Papyan's class means are a part of the Gauss-Newton matrix, ≈ H at a minimum: their C
  Gram eigenvalues lie below the C largest Hessian eigenvalues (a few percent of slack for the
  residual part of H), and about C − 1 of them are far from zero. The judged ratio is the
  largest C's (median over its seeds), not one pooled over every C."""
  spectra = read_curves(finished_run / "history.csv", "eigenvalue")
  grams = read_curves(finished_run / "history.csv", "gram_eigenvalue")
  for row in read_csv(finished_run / "results.csv"):
    gram, top = np.asarray(grams[row["member"]][1]), np.asarray(spectra[row["member"]][1])
    c = int(row["classes"])
    assert gram.size == c
    assert np.all(gram <= 1.05 * top[:c])
    ratio = gram[: c - 1].sum() / top[: c - 1].sum()
    assert row["gram_outlier_ratio"] == pytest.approx(ratio)
    assert ratio > 0.2
  table = read_csv(finished_run / "results.csv")
  largest = [r for r in table if r["classes"] == summary["n_classes"]]
  assert summary["gram_outlier_ratio"] == pytest.approx(
    np.median([r["gram_outlier_ratio"] for r in largest])
  )


def test_the_bulk_near_zero_after_training(finished_run, summary):
  """The mean over members of the share of |λ| ≤ near_zero_relative · max|λ|; the quick config
  takes no spectrum at initialization."""
  config = json.loads((finished_run / "config.json").read_text())
  relative = config["near_zero_relative"]
  spectra = read_curves(finished_run / "history.csv", "eigenvalue")
  values = [np.abs(np.asarray(v)) for _, v in spectra.values()]
  fractions = [np.mean(v <= relative * v.max()) for v in values]
  assert summary["bulk_fraction_near_zero"] == pytest.approx(np.mean(fractions))
  assert not config["init_spectrum"]
  assert summary["bulk_fraction_near_zero_init"] is None
  assert not read_curves(finished_run / "history.csv", "eigenvalue_init")


def _slope_verdict(summary: dict) -> str:
  """|slope − 1| < 0.5 beyond t_{0.975, dof} standard errors, dof the (C, seed) points less 2
  (no error with two points: inconclusive; an error of 0 decides only from dof 5 on)."""
  slope_error = summary["outlier_slope_error"]
  se, dof = summary["outlier_slope_vs_classes_se"], summary["outlier_slope_vs_classes_dof"]
  if se is None or dof is None or (se == 0 and dof < MIN_DOF_WITHOUT_SPREAD):
    return verdict(None)
  return verdict(None if abs(slope_error - 0.5) <= margin(dof) * se else slope_error < 0.5)


def test_the_verdicts_follow_the_criteria(finished_run, summary):
  """slope 1 within 0.5 beyond t_{0.975, dof} standard errors (no standard error with the quick
  config's two points, one seed at two class counts: inconclusive); n_outliers within one of C;
  the Gram carries more than half; the bulk > half."""
  slope_error = summary["outlier_slope_error"]
  assert slope_error == pytest.approx(abs(summary["outlier_slope_vs_classes"] - 1))
  points = len(read_csv(finished_run / "results.csv"))
  assert points == 2
  assert summary["outlier_slope_vs_classes_dof"] is None  # 2 points - 2 parameters: none left
  slope = _slope_verdict(summary)
  assert slope == "inconclusive"
  assert summary["outlier_count_error"] == abs(summary["n_outliers"] - summary["n_classes"])
  assert summary["verdicts"] == {
    "outlier_slope_vs_classes": slope,
    "n_outliers": verdict(summary["outlier_count_error"] <= 1),
    "gram_outlier_ratio": verdict(summary["gram_outlier_ratio"] > 0.5),
    "bulk_fraction_near_zero": verdict(summary["bulk_fraction_near_zero"] > 0.5),
  }


def test_the_slope_is_judged_on_the_points_less_two_degrees_of_freedom():
  """Made-up counts at C = 2, 4, 6, two seeds each: (2, 1), (4, 3), (6, 6). The least-squares
  slope 1.125 ± 0.130 on 6 − 2 = 4 degrees of freedom: |1.125 − 1| = 0.125 lies 0.375 below 0.5,
  beyond t_{0.975, 4} = 2.78 standard errors (0.361)."""
  experiment = registry.load("hessian_outliers")
  config = ml_collections.ConfigDict({"classes": [2, 4, 6], "near_zero_relative": 1e-3})
  counts = {2: (2, 1), 4: (4, 3), 6: (6, 6)}
  table = [
    {"member": f"C{c}_seed{s}", "classes": c, "seed": s, "n_outliers": n}
    | {"gram_outlier_ratio": 0.9, "final_train_error": 0.0, "bulk_fraction_near_zero": 0.8}
    | {"bulk_fraction_near_zero_init": None, "outlier_gap_ratio": 10.0, "num_params": 20}
    for c, seed_counts in counts.items()
    for s, n in enumerate(seed_counts)
  ]
  history = [
    {"member": row["member"], "step": k, "metric": "eigenvalue", "value": 10.0 - k}
    for row in table
    for k in range(1, 21)
  ]
  summary = experiment.summarize(config, Results(table, history))
  x = np.repeat([2.0, 4.0, 6.0], 2)
  y = np.asarray([n for seed_counts in counts.values() for n in seed_counts], float)
  (slope, _), cov = np.polyfit(x, y, 1, cov="unscaled")
  residuals = y - np.polyval(np.polyfit(x, y, 1), x)
  se = np.sqrt(residuals @ residuals / (x.size - 2) * cov[0, 0])
  assert summary["outlier_slope_vs_classes"] == pytest.approx(slope)  # 1.125
  assert summary["outlier_slope_vs_classes_se"] == pytest.approx(se)  # 0.130
  assert summary["outlier_slope_vs_classes_dof"] == x.size - 2
  assert 0.5 - abs(slope - 1) > margin(4) * se  # beyond 2.78 errors (0.375 > 0.361)
  assert experiment.verdicts(summary)["outlier_slope_vs_classes"] == _slope_verdict(summary)
  assert _slope_verdict(summary) == "reproduced"


@pytest.mark.parametrize(
  ("field", "value"), [("near_zero_relative", "2.0"), ("classes", "[2]"), ("classes", "[1,10]")]
)
def test_bad_config_is_refused(tmp_path, capsys, field, value):
  code = cli.main(["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", f"{field}={value}"])
  assert code == 2
  assert field in capsys.readouterr().err
