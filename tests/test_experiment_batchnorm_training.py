"""The batch normalization experiment (§8.7.1): its quick config through the CLI, its claims."""

import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study.experiment import verdict

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "batchnorm_training"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_output(finished_run):
  for name in ("results.csv", "history.csv", "report.html", "summary.json"):
    assert (finished_run / name).stat().st_size > 0
  assert len(list(finished_run.glob("*.png"))) == 2


def test_batchnorm_steadies_the_unit_input(summary):
  """Ioffe & Szegedy (2015) Fig. 1: with BatchNorm the input distribution of a sigmoid drifts
  less during training (here, relative to its final 15-85 spread: at least 1.5× less)."""
  assert summary["percentile_drift_ratio"] > 1.5


def test_batchnorm_trains_at_least_as_fast_a_rate(summary):
  """Published: much larger trainable rates with BatchNorm. At this scale both networks train up
  to the same grid rate (the max_lr_ratio verdict tells); what holds is that BatchNorm is not
  worse."""
  rates = summary["max_trainable_learning_rate"]
  assert rates["plain"] is not None and rates["batchnorm"] is not None
  assert summary["max_lr_ratio"] >= 1.0
  assert not summary["max_lr_at_grid_edge"]


def test_verdicts_judge_both_ratios_against_1(summary):
  assert summary["verdicts"] == {
    "percentile_drift_ratio": verdict(summary["percentile_drift_ratio"] > 1),
    "max_lr_ratio": verdict(summary["max_lr_ratio"] > 1),
  }


@pytest.mark.parametrize(
  ("field", "value"),
  [("unit", 99), ("learning_rates", [1.0]), ("eval_every", 7), ("trainable_loss", 0.0)],
)
def test_check_names_the_bad_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, repr(value))
