"""The surrogate-loss experiment (§8.1.2): its quick config through the CLI, its claims."""

import jax
import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study import data
from jaxopt_study.experiment import INCONCLUSIVE, TIE_RTOL, margin, verdict
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import read_csv

slow = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "surrogate_early_stopping"
finished_run, summary = quick_run_fixtures(NAME)


def test_teacher_labels_are_the_argmax_of_the_teacher_regression():
  """`data.teacher_classification`: the class of the largest output of `teacher_student`'s
  teacher, on the same inputs."""
  key = jax.random.key(3)
  found = data.teacher_classification(key, 50, 30, 5, 7, 3)
  teacher = data.teacher_student(key, 50, 30, 5, 7, 3)
  np.testing.assert_array_equal(found.x_test, teacher.x_test)
  np.testing.assert_array_equal(found.y_train, np.argmax(np.asarray(teacher.y_train), axis=1))
  np.testing.assert_array_equal(found.y_test, np.argmax(np.asarray(teacher.y_test), axis=1))
  assert found.y_train.dtype == np.int32
  assert set(np.unique(np.asarray(found.y_test))) == {0, 1, 2}
  with pytest.raises(ValueError, match="num_classes=1"):
    data.teacher_classification(key, 5, 5, 2, 2, 1)


@slow
def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html"} <= names
  assert len([n for n in names if n.endswith(".png")]) == 4


@slow
def test_nll_keeps_falling_after_zero_training_error(summary):
  """§8.1.2: training goes on after the 0-1 error is 0, and the surrogate keeps falling."""
  assert summary["seeds_reaching_zero_train_error"] == summary["num_seeds"]
  assert summary["steps_after_zero_train_error"] > summary["zero_train_error_step"]
  assert summary["train_nll_drop_after_zero_train_error"] > 3.0


def at_zero_and_last(finished_run, metric: str, column: str) -> list[tuple[float, float]]:
  """Per seed, `metric` from the history at the seed's first zero training error (checked
  against results.csv's `{column}_at_zero`) and at its last evaluation."""
  curves = read_curves(finished_run / "history.csv", metric)
  pairs = []
  for row in read_csv(finished_run / "results.csv"):
    steps, values = curves[row["member"]]
    at_zero = values[steps.index(row["zero_train_error_step"])]
    assert row[f"{column}_at_zero"] == pytest.approx(at_zero)
    pairs.append((at_zero, values[-1]))
  return pairs


@slow
def test_the_nll_drop_is_a_geometric_mean_of_the_seeds_ratios(finished_run, summary):
  """Each seed's training NLL at its first zero training error over its last, from the history;
  their geometric mean and the delta-method error of its log (ratio · s/√n of the log ratios)."""
  logs = [np.log(a / b) for a, b in at_zero_and_last(finished_run, "train_loss", "train_nll")]
  drop = np.exp(np.mean(logs))
  assert summary["train_nll_drop_after_zero_train_error"] == pytest.approx(drop)
  assert summary["train_nll_drop_after_zero_train_error_se"] == pytest.approx(
    drop * np.std(logs, ddof=1) / np.sqrt(len(logs))
  )
  assert summary["train_nll_drop_after_zero_train_error_dof"] == len(logs) - 1


@slow
def test_the_gain_is_paired_per_seed_on_the_test_split(finished_run, summary):
  """The gain is each seed's test error at its first zero training error minus its last, read
  from the history of the test split (20,000 examples), averaged over seeds with its s.e."""
  assert summary["num_test"] >= 20000
  assert summary["num_validation"] > 0
  gains = [a - b for a, b in at_zero_and_last(finished_run, "test_error", "test_error")]
  assert summary["heldout_gain_after_zero_train_error"] == pytest.approx(np.mean(gains))
  assert summary["heldout_gain_after_zero_train_error_se"] == pytest.approx(
    np.std(gains, ddof=1) / np.sqrt(len(gains))
  )


@slow
def test_verdicts_judge_the_nll_drop_and_the_heldout_gain(summary):
  """The gain beyond t_{0.975, dof} standard errors of 0, dof the seeds that reached zero training
  error (all of them at the quick config) − 1."""
  gain = summary["heldout_gain_after_zero_train_error"]
  se = summary["heldout_gain_after_zero_train_error_se"]
  dof = summary["heldout_gain_after_zero_train_error_dof"]
  assert dof == summary["seeds_reaching_zero_train_error"] - 1 == summary["num_seeds"] - 1
  drop, drop_se = (summary[f"train_nll_drop_after_zero_train_error{k}"] for k in ("", "_se"))
  assert np.log(drop) > margin(dof) * drop_se / drop  # beyond its margin on the log scale
  assert summary["verdicts"] == {
    "train_nll_drop_after_zero_train_error": "reproduced",
    "heldout_gain_after_zero_train_error": verdict(gain > 0)
    if abs(gain) > margin(dof) * se * (1 + TIE_RTOL)
    else INCONCLUSIVE,
  }


@slow
def test_early_stopping_picks_on_validation_and_reports_the_test_split(finished_run):
  """The stopping point is chosen on the validation split; its parameters are those of the run
  without stopping at that step (the same trajectory up to it), so their test-split error is the
  test error that run recorded there, up to float summation order (< 1 example in 20,000)."""
  table = read_csv(finished_run / "results.csv")
  errors = read_curves(finished_run / "history.csv", "test_error")
  for row in table:
    steps, values = errors[row["member"]]
    assert row["early_stopping_step"] in steps
    at_stop = values[steps.index(row["early_stopping_step"])]
    assert row["early_stopping_test_error"] == pytest.approx(at_stop, abs=0.5 / 20000)
    assert 0 < row["early_stopping_validation_error"] < 1


@slow
@pytest.mark.parametrize(
  ("field", "value"),
  [("num_seeds", "0"), ("patience", "0"), ("sampling", "'x'"), ("num_validation", "22000")],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field.split(".")[-1] in refused_field(tmp_path, capsys, NAME, field, value)
