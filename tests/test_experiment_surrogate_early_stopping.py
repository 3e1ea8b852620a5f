"""The surrogate-loss experiment (§8.1.2): its quick config through the CLI, its claims."""

import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study.experiment import INCONCLUSIVE, verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "surrogate_early_stopping"
finished_run, summary = quick_run_fixtures(NAME)


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html"} <= names
  assert len([n for n in names if n.endswith(".png")]) == 4


def test_nll_keeps_falling_after_zero_training_error(summary):
  """§8.1.2: training goes on long after the 0-1 error is 0, and the surrogate keeps falling."""
  assert summary["seeds_reaching_zero_train_error"] == summary["num_seeds"]
  assert summary["steps_after_zero_train_error"] > 2 * summary["zero_train_error_step"]
  assert summary["train_nll_drop_after_zero_train_error"] > 3.0


def test_heldout_error_after_zero_training_error(summary):
  """The book's 'held-out 0-1 error keeps improving' is not resolved at this scale: its change
  stays within three standard errors and one held-out example (1/450) of zero. The check is that
  it does not get worse by more than that, which is what holds here."""
  gain = summary["heldout_gain_after_zero_train_error"]
  se = summary["heldout_gain_after_zero_train_error_se"]
  assert gain > -(3 * se + 1 / 450)


def test_verdicts_judge_the_nll_drop_and_the_heldout_gain(summary):
  gain = summary["heldout_gain_after_zero_train_error"]
  se = summary["heldout_gain_after_zero_train_error_se"]
  assert summary["verdicts"] == {
    "train_nll_drop_after_zero_train_error": "reproduced",
    "heldout_gain_after_zero_train_error": verdict(gain > 0)
    if abs(gain) > 2 * se
    else INCONCLUSIVE,
  }


def test_early_stopping_point(finished_run, summary):
  """train.py's early stopping keeps the lowest held-out error seen before it stops."""
  table = read_csv(finished_run / "results.csv")
  for row in table:
    assert 0 <= row["early_stopping_step"] <= 1200
    assert row["early_stopping_test_error"] <= row["test_error_at_zero"]
  assert summary["early_stopping_test_error"] <= summary["final_test_error"]


@pytest.mark.parametrize(
  ("field", "value"), [("num_seeds", "0"), ("patience", "0"), ("sampling", "'x'")]
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field.split(".")[-1] in refused_field(tmp_path, capsys, NAME, field, value)
