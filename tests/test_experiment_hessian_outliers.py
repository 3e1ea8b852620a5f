"""The Hessian-outliers experiment: its quick config through the CLI, its protocol and verdicts."""

import json
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jaxopt_study import cli, registry
from jaxopt_study.experiment import MIN_DOF_WITHOUT_SPREAD, TIE_RTOL, Results, margin, verdict
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


def test_counts_follow_the_gap_rule_and_the_slope_is_the_seeds_least_squares_ones(
  finished_run, summary
):
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
  seeds = np.asarray([int(r["seed"]) for r in table])
  slopes = [np.polyfit(classes[seeds == s], counts[seeds == s], 1)[0] for s in sorted(set(seeds))]
  assert summary["outlier_slope_by_seed"] == pytest.approx(
    {str(s): v for s, v in zip(sorted(set(seeds)), slopes, strict=True)}
  )
  assert summary["outlier_slope_vs_classes"] == pytest.approx(np.mean(slopes))
  assert summary["outlier_slope_vs_classes_se"] == pytest.approx(
    np.std(slopes, ddof=1) / np.sqrt(len(slopes))
  )
  # every seed sees the same class counts: the mean of the seeds' slopes is the pooled fit's
  assert summary["outlier_slope_vs_classes"] == pytest.approx(np.polyfit(classes, counts, 1)[0])
  assert summary["outliers_by_classes"] == pytest.approx(
    {str(c): float(np.mean(counts[classes == c])) for c in config["classes"]}
  )


def test_the_gram_eigenvalues_are_below_the_hessian_outliers(finished_run, summary):
  """Papyan's class means are a part of the Gauss-Newton matrix, ≈ H at a minimum: their C
  Gram eigenvalues lie below the C largest Hessian eigenvalues (a few percent of slack for the
  residual part of H), and about C − 1 of them are far from zero. The judged ratio is the
  largest C's (mean over its seeds, with the standard error of that mean), not one pooled over
  every C."""
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
  ratios = np.asarray([r["gram_outlier_ratio"] for r in largest])
  assert summary["gram_outlier_ratio_by_seed"] == pytest.approx(
    {r["member"]: r["gram_outlier_ratio"] for r in largest}
  )
  assert summary["gram_outlier_ratio"] == pytest.approx(ratios.mean())
  se = ratios.std(ddof=1) / np.sqrt(ratios.size)
  assert summary["gram_outlier_ratio_se"] == pytest.approx(se)
  assert summary["gram_outlier_ratio_dof"] == len(largest) - 1 == 2


def test_the_bulk_near_zero_after_training(finished_run, summary):
  """The mean over members of the share of |λ| ≤ near_zero_relative · max|λ|, its error over
  seeds (each seed's mean over C, one draw); the quick config takes no spectrum at
  initialization."""
  config = json.loads((finished_run / "config.json").read_text())
  relative = config["near_zero_relative"]
  spectra = read_curves(finished_run / "history.csv", "eigenvalue")
  fractions = {}
  for member, (_, v) in spectra.items():
    v = np.abs(np.asarray(v))
    fractions[member] = np.mean(v <= relative * v.max())
  assert summary["bulk_fraction_near_zero"] == pytest.approx(np.mean(list(fractions.values())))
  table = read_csv(finished_run / "results.csv")
  by_seed = {
    str(seed): np.mean([fractions[r["member"]] for r in table if r["seed"] == seed])
    for seed in range(config["seed"], config["seed"] + config["num_seeds"])
  }
  assert summary["bulk_fraction_near_zero_by_seed"] == pytest.approx(by_seed)
  means = np.asarray(list(by_seed.values()))
  assert summary["bulk_fraction_near_zero_se"] == pytest.approx(
    means.std(ddof=1) / np.sqrt(means.size)
  )
  assert summary["bulk_fraction_near_zero_dof"] == config["num_seeds"] - 1 == 2
  assert not config["init_spectrum"]
  assert summary["bulk_fraction_near_zero_init"] is None
  assert not read_curves(finished_run / "history.csv", "eigenvalue_init")


def _judged(distance: float, se: float | None, dof: int | None, value: float) -> str:
  """A claim on `value` that holds for distance > 0 (its distance past its threshold), decided
  beyond t_{0.975, dof} standard errors (none: inconclusive; an error of 0, up to float32
  rounding of the value, decides only from dof 5 on)."""
  if se is None or dof is None or (se <= 1e-5 * abs(value) and dof < MIN_DOF_WITHOUT_SPREAD):
    return verdict(None)
  return verdict(None if abs(distance) <= margin(dof) * se * (1 + TIE_RTOL) else distance > 0)


def _slope_verdict(summary: dict) -> str:
  """|slope − 1| < 0.5 beyond t_{0.975, dof} standard errors of the mean of the seeds' slopes,
  dof the seeds less 1 (an error of 0 decides only from dof 5 on)."""
  se, dof = summary["outlier_slope_vs_classes_se"], summary["outlier_slope_vs_classes_dof"]
  return _judged(0.5 - summary["outlier_slope_error"], se, dof, summary["outlier_slope_error"])


def test_the_verdicts_follow_the_criteria(finished_run, summary):
  """Each claim beyond t_{0.975, dof} standard errors of its threshold: slope 1 within 0.5, the
  mean of the quick config's three seeds' slopes over its two class counts (2 degrees of
  freedom); n_outliers, the mean count over the largest C's three seeds, within 1.5 of C; the
  Gram's mean share above one half; the bulk above one half (2 degrees of freedom each)."""
  table = read_csv(finished_run / "results.csv")
  config = json.loads((finished_run / "config.json").read_text())
  slope_error = summary["outlier_slope_error"]
  assert slope_error == pytest.approx(abs(summary["outlier_slope_vs_classes"] - 1))
  assert len(table) == len(config["classes"]) * config["num_seeds"] == 6
  assert summary["outlier_slope_vs_classes_dof"] == config["num_seeds"] - 1 == 2
  counts = np.asarray([r["n_outliers"] for r in table if r["classes"] == summary["n_classes"]])
  assert summary["n_outliers_by_seed"] == {
    r["member"]: r["n_outliers"] for r in table if r["classes"] == summary["n_classes"]
  }
  assert summary["n_outliers"] == pytest.approx(counts.mean())
  assert summary["n_outliers_se"] == pytest.approx(counts.std(ddof=1) / np.sqrt(counts.size))
  assert summary["n_outliers_dof"] == config["num_seeds"] - 1 == 2
  assert summary["outlier_count_error"] == pytest.approx(abs(counts.mean() - summary["n_classes"]))
  assert summary["verdicts"] == {
    "outlier_slope_vs_classes": _slope_verdict(summary),
    "n_outliers": _judged(
      1.5 - summary["outlier_count_error"],
      summary["n_outliers_se"],
      summary["n_outliers_dof"],
      summary["outlier_count_error"],
    ),
    "gram_outlier_ratio": _judged(
      summary["gram_outlier_ratio"] - 0.5,
      summary["gram_outlier_ratio_se"],
      summary["gram_outlier_ratio_dof"],
      summary["gram_outlier_ratio"],
    ),
    "bulk_fraction_near_zero": _judged(
      summary["bulk_fraction_near_zero"] - 0.5,
      summary["bulk_fraction_near_zero_se"],
      summary["bulk_fraction_near_zero_dof"],
      summary["bulk_fraction_near_zero"],
    ),
  }


def test_the_slope_is_the_mean_of_the_seeds_slopes():
  """Made-up counts at C = 2, 4, 6 for three seeds, (2, 4, 6), (1, 3, 6) and (2, 4, 5): slopes
  1, 1.25 and 0.75 by least squares, 1.0 ± 0.144 over the seeds on 2 degrees of freedom, whose
  margin, t_{0.975, 2} = 4.30 errors (0.62), covers the 0.5 to the threshold: inconclusive. With
  the third seed's counts (2, 4, 6): 1.083 ± 0.083, 0.417 from 0.5, beyond 4.30 errors (0.359):
  reproduced."""
  experiment = registry.load("hessian_outliers")
  config = ml_collections.ConfigDict({"classes": [2, 4, 6], "near_zero_relative": 1e-3})

  def summarize(counts):
    table = [
      {"member": f"C{c}_seed{s}", "classes": c, "seed": s, "n_outliers": n}
      | {"gram_outlier_ratio": 0.9, "final_train_error": 0.0, "bulk_fraction_near_zero": 0.8}
      | {"bulk_fraction_near_zero_init": None, "outlier_gap_ratio": 10.0, "num_params": 20}
      for s, seed_counts in enumerate(counts)
      for c, n in zip((2, 4, 6), seed_counts, strict=True)
    ]
    history = [
      {"member": row["member"], "step": k, "metric": "eigenvalue", "value": 10.0 - k}
      for row in table
      for k in range(1, 21)
    ]
    return experiment.summarize(config, Results(table, history))

  for counts, slopes, read in (
    ([(2, 4, 6), (1, 3, 6), (2, 4, 5)], [1.0, 1.25, 0.75], "inconclusive"),
    ([(2, 4, 6), (1, 3, 6), (2, 4, 6)], [1.0, 1.25, 1.0], "reproduced"),
  ):
    summary = summarize(counts)
    assert summary["outlier_slope_by_seed"] == pytest.approx(dict(zip("012", slopes, strict=True)))
    se = np.std(slopes, ddof=1) / np.sqrt(3)
    assert summary["outlier_slope_vs_classes"] == pytest.approx(np.mean(slopes))
    assert summary["outlier_slope_vs_classes_se"] == pytest.approx(se)
    assert summary["outlier_slope_vs_classes_dof"] == 2
    beyond = 0.5 - abs(np.mean(slopes) - 1) > margin(2) * se
    assert beyond == (read == "reproduced")
    assert experiment.verdicts(summary)["outlier_slope_vs_classes"] == _slope_verdict(summary)
    assert _slope_verdict(summary) == read


def test_the_largest_c_claims_are_means_over_seeds_and_the_bulk_error_is_per_seed():
  """Made-up members at C = 2 and 10, three seeds. n_outliers: counts (3, 2, 2) at C = 10, mean
  2.33 ± 0.33 on 2 degrees of freedom, 7.67 from C: beyond 1.5 + 4.30 errors, not reproduced.
  Gram shares (0.7, 0.75, 0.8): 0.75 ± 0.029, 0.25 above one half, beyond 4.30 errors (0.124).
  The bulk: per member 0.9, 0.92, 0.94 at C = 2 and 0.6, 0.61, 0.65 at C = 10; its error is that
  of the per-seed means over C (0.75, 0.765, 0.795), not of the six members, whose spread is the
  change with C."""
  experiment = registry.load("hessian_outliers")
  config = ml_collections.ConfigDict({"classes": [2, 10], "near_zero_relative": 1e-2})
  values = {  # (C, seed): (count, gram share, bulk share)
    (2, 0): (2, 0.9, 0.9),
    (2, 1): (2, 0.9, 0.92),
    (2, 2): (1, 0.9, 0.94),
    (10, 0): (3, 0.7, 0.6),
    (10, 1): (2, 0.75, 0.61),
    (10, 2): (2, 0.8, 0.65),
  }
  table = [
    {"member": f"C{c}_seed{s}", "classes": c, "seed": s, "n_outliers": n}
    | {"gram_outlier_ratio": g, "final_train_error": 0.0, "bulk_fraction_near_zero": b}
    | {"bulk_fraction_near_zero_init": None, "outlier_gap_ratio": 2.0, "num_params": 30}
    for (c, s), (n, g, b) in values.items()
  ]
  history = [
    {"member": row["member"], "step": k, "metric": "eigenvalue", "value": 30.0 - k}
    for row in table
    for k in range(1, 31)
  ]
  summary = experiment.summarize(config, Results(table, history))
  counts, shares = np.asarray([3.0, 2.0, 2.0]), np.asarray([0.7, 0.75, 0.8])
  assert summary["n_outliers"] == pytest.approx(counts.mean())  # 2.33
  assert summary["n_outliers_se"] == pytest.approx(counts.std(ddof=1) / np.sqrt(3))  # 0.33
  assert summary["n_outliers_dof"] == summary["gram_outlier_ratio_dof"] == 2
  assert summary["outlier_count_error"] == pytest.approx(10 - counts.mean())
  assert summary["gram_outlier_ratio"] == pytest.approx(0.75)
  assert summary["gram_outlier_ratio_se"] == pytest.approx(shares.std(ddof=1) / np.sqrt(3))
  per_seed = np.asarray([0.75, 0.765, 0.795])
  members = np.asarray([v[2] for v in values.values()])
  assert summary["bulk_fraction_near_zero"] == pytest.approx(members.mean())
  assert summary["bulk_fraction_near_zero_by_seed"] == pytest.approx(
    {"0": 0.75, "1": 0.765, "2": 0.795}
  )
  assert summary["bulk_fraction_near_zero_se"] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(3))
  assert summary["bulk_fraction_near_zero_se"] < members.std(ddof=1) / np.sqrt(6) / 3
  assert summary["bulk_fraction_near_zero_dof"] == 2
  assert summary["outliers_by_classes"] == pytest.approx({"2": 5 / 3, "10": 7 / 3})
  assert experiment.verdicts(summary) == {
    "outlier_slope_vs_classes": "not reproduced",  # seeds 1/8, 0, 1/8: 0.083 ± 0.042, dof 2
    "n_outliers": "not reproduced",
    "gram_outlier_ratio": "reproduced",
    "bulk_fraction_near_zero": "reproduced",
  }
  assert experiment.verdicts(summary)["outlier_slope_vs_classes"] == _slope_verdict(summary)


@pytest.mark.parametrize(
  ("field", "value"), [("near_zero_relative", "2.0"), ("classes", "[2]"), ("classes", "[1,10]")]
)
def test_bad_config_is_refused(tmp_path, capsys, field, value):
  code = cli.main(["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", f"{field}={value}"])
  assert code == 2
  assert field in capsys.readouterr().err
