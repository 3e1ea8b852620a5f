"""The sharp-minima experiment: Keskar et al.'s protocol on its quick config, through the CLI.

What is checked is the protocol and the arithmetic of the claims, not the outcome: both minibatch
sizes train for the same epochs over the same seeds, both training losses are reported with
their standard errors, the ratios, gaps and verdicts follow from the per-run table, and the
equal-loss control stops the small minibatch near the large one's loss. The subspace sharpness
itself is tested against the exact maximum of a quadratic in `tests/test_subspace_sharpness.py`.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import deciding_settings

from jaxopt_study import cli, experiment
from jaxopt_study.config import load_config
from jaxopt_study.lab import digits_tasks
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs the experiment end to end


ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "sharp_minima_quick.py"
THRESHOLDS = {  # claim -> the value it must exceed
  "sharpness_ratio_large_over_small": 1.0,
  "subspace_sharpness_ratio": 1.0,
  "test_error_gap": 0.0,
  "equal_loss_sharpness_ratio": 1.0,
  "equal_loss_subspace_sharpness_ratio": 1.0,
  "equal_loss_test_error_gap": 0.0,
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("sharp_minima")
  assert cli.main(["run", str(QUICK), "--out", str(out), "--no-progress"]) == 0
  summary = json.loads((out / "summary.json").read_text())
  return out, summary, read_csv(out / "results.csv"), load_config(QUICK)


def runs(table, batch):
  return sorted((row for row in table if row["batch"] == batch), key=lambda row: row["seed"])


def column(table, batch, name):
  return np.asarray([row[name] for row in runs(table, batch)], float)


def test_both_minibatch_sizes_train_for_the_same_epochs_over_the_same_seeds(finished_run):
  _, summary, table, config = finished_run
  num_train = digits_tasks.load(config.data).x_train.shape[0]
  seeds = list(range(config.seed, config.seed + config.num_seeds))
  assert config.num_seeds >= 2
  for batch in ("small", "large"):
    size = config[f"{batch}_batch_size"]
    assert [row["seed"] for row in runs(table, batch)] == seeds
    for row in runs(table, batch):
      assert row["batch_size"] == size
      assert row["steps"] == config.epochs * (num_train // size)
      assert row["epochs"] == pytest.approx(row["steps"] * size / num_train)
    assert summary[f"epochs_{batch}"] == pytest.approx(runs(table, batch)[0]["epochs"])
  # the same passes over the data; only the n mod m examples each shuffle drops differ
  assert summary["epochs_large"] == pytest.approx(summary["epochs_small"], rel=0.01)
  assert summary["epochs_small"] == pytest.approx(config.epochs, rel=0.01)


def test_both_training_losses_are_reported_with_their_standard_errors(finished_run):
  _, summary, table, config = finished_run
  for batch in ("small", "large"):
    losses = column(table, batch, "final_train_loss")
    assert summary[f"train_loss_{batch}"] == pytest.approx(losses.mean())
    se = losses.std(ddof=1) / np.sqrt(config.num_seeds)
    assert summary[f"train_loss_{batch}_se"] == pytest.approx(se)
    assert 0 <= summary[f"train_error_{batch}"] < 0.05  # both near 100% training accuracy


@pytest.mark.parametrize("small, prefix", [("small", ""), ("small_equal_loss", "equal_loss_")])
def test_claims_follow_from_the_runs_paired_by_seed(finished_run, small, prefix):
  """Ratios of the mean sharpnesses with the delta method's error, the covariance of the two
  runs of each seed included; the test error gap as the mean of per-seed differences."""
  _, summary, table, config = finished_run
  for measure, claim in (
    ("sharpness", "sharpness_ratio_large_over_small" if not prefix else "sharpness_ratio"),
    ("subspace_sharpness", "subspace_sharpness_ratio"),
  ):
    claim = prefix + claim
    for eps in config.sharpness_eps:
      name = f"{measure}_eps{eps:g}"
      large, other = column(table, "large", name), column(table, small, name)
      k, m_large, m_other = large.size, large.mean(), other.mean()
      ratio = m_large / m_other
      (var_large, covariance), (_, var_other) = np.cov(large, other, ddof=1)
      relative = var_large / m_large**2 + var_other / m_other**2
      relative -= 2 * covariance / (m_large * m_other)
      assert summary[claim][f"{eps:g}"] == pytest.approx(ratio)
      assert summary[f"{claim}_se"][f"{eps:g}"] == pytest.approx(ratio * np.sqrt(relative / k))
  gaps = column(table, "large", "final_test_error") - column(table, small, "final_test_error")
  assert summary[f"{prefix}test_error_gap"] == pytest.approx(gaps.mean())
  se = gaps.std(ddof=1) / np.sqrt(gaps.size)
  assert summary[f"{prefix}test_error_gap_se"] == pytest.approx(se)


def _judged(value, se, dof, threshold, ratio, settings):
  """One of `settings` settings' verdict, as `experiment.above` should judge it: beyond
  t_{0.975, dof} standard errors of the threshold (a ratio on the log scale, its error divided by
  the ratio), or t_{1 − 0.025/settings, dof} below it (Bonferroni's margin: any setting fails the
  claim); undecided without an error or with an error of 0 from fewer than 6 seeds."""
  if se is None or dof is None:
    return None
  if se <= 1e-5 * abs(value) and dof < experiment.MIN_DOF_WITHOUT_SPREAD:  # 0, up to rounding
    return None
  distance = np.log(value / threshold) if ratio else value - threshold
  spread = se / value if ratio else se
  needed = experiment.margin(dof) if distance > 0 else experiment.margin(dof, settings)
  if abs(distance) <= needed * spread * (1 + experiment.TIE_RTOL):
    return None
  return bool(distance > 0)


def test_verdicts_judge_each_claim_by_its_standard_error(finished_run):
  """Every claim's error is over the seeds, paired: dof = seeds − 1 (2 at the quick config, where
  t_{0.975, 2} = 4.30 errors); the sharpness ratios are judged on the log scale."""
  _, summary, _, config = finished_run
  assert set(summary["verdicts"]) == set(THRESHOLDS)
  for claim, threshold in THRESHOLDS.items():
    values, errors, dofs = (summary[f"{claim}{key}"] for key in ("", "_se", "_dof"))
    if not isinstance(values, dict):
      values, errors, dofs = {"": values}, {"": errors}, {"": dofs}
    settings = deciding_settings(values, errors, dofs, ratio=threshold == 1.0)
    assert set(dofs) == set(values)
    assert all(dof == config.num_seeds - 1 for dof in dofs.values())
    judged = [
      _judged(values[k], errors[k], dofs[k], threshold, threshold == 1.0, settings) for k in values
    ]
    if any(j is False for j in judged):
      expected = "not reproduced"
    elif any(j is None for j in judged):
      expected = "inconclusive"
    else:
      expected = "reproduced"
    assert summary["verdicts"][claim] == expected


def test_sharpness_grows_with_the_box(finished_run):
  """C_ε of the smaller ε lies inside the larger one's, in the full space and the subspace."""
  _, _, table, _ = finished_run
  for row in table:
    for prefix in ("sharpness", "subspace_sharpness"):
      assert 0 < row[f"{prefix}_eps0.0005"] < row[f"{prefix}_eps0.001"]


def test_the_control_stops_the_small_batch_near_the_large_batchs_loss(finished_run):
  out, summary, table, config = finished_run
  control = runs(table, "small_equal_loss")
  assert [row["seed"] for row in control] == [row["seed"] for row in runs(table, "small")]
  assert 0 < summary["equal_loss_epochs_small"] < summary["epochs_small"]
  target = np.log(summary["train_loss_large"])
  at_equal_loss = abs(np.log(summary["equal_loss_train_loss_small"]) - target)
  assert at_equal_loss < abs(np.log(summary["train_loss_small"]) - target)
  # stopped at the interpolated step, not the nearest evaluated epoch: within 10% of the loss
  assert at_equal_loss < np.log(1.1)
  for name in ("train_loss.png", "test_error.png", "sharpness_vs_loss.png"):
    assert (out / name).is_file()


@pytest.mark.parametrize(
  "setting, field",
  [
    ("small_batch_size=500", "small_batch_size"),
    ("epochs=7", "eval_every_epochs"),
    ("num_seeds=1", "num_seeds"),
    ("subspace_dim=100000", "subspace_dim"),
    ("subspace_starts=0", "subspace_starts"),
    ("large_batch_size=5000", "large_batch_size"),  # was blamed on steps=0
  ],
)
def test_bad_config_is_refused(tmp_path, capsys, setting, field):
  code = cli.main(["run", str(QUICK), "--out", str(tmp_path / "x"), "--set", setting])
  assert code == 2
  assert field in capsys.readouterr().err
