"""Wilson et al. (2017) §3.3 through the quick config: SGD generalizes, adaptive methods do not."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from quick_runs import quick_run_fixtures, refused_field

from jaxopt_study import registry
from jaxopt_study.config import load_config
from jaxopt_study.experiment import Results
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "adaptive_vs_sgd"
finished_run, summary = quick_run_fixtures(NAME)
QUICK = Path(__file__).parents[1] / "configs" / f"{NAME}_quick.py"


def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html"} <= names
  assert {"train_loss.png", "test_error.png"} <= names


def test_every_method_fits_the_training_set(summary):
  for name, error in summary["train_error"].items():
    assert error == 0.0, name
    assert summary["final_train_loss"][name] < 1e-3, name


def test_sgd_generalizes(summary):
  """Gradient descent from 0 reaches the minimum-norm solution: no held-out error."""
  assert summary["sgd_test_error"] == 0.0


def test_adaptive_methods_call_every_new_point_positive(finished_run, summary):
  """AdaGrad, RMSProp and Adam err on exactly the −1 held-out points, at every rate tried."""
  minority = summary["minority_share"]
  assert 0.3 < minority < 0.5  # p = 0.6
  assert set(summary["adaptive_test_error"]) == {"adagrad", "rmsprop", "adam"}
  for row in read_csv(finished_run / "results.csv"):
    if row["optimizer"] == "sgd":
      assert row["test_error"] == 0.0
      assert row["w_label"] > row["w_always_on"]  # the label feature decides
    else:
      assert row["test_error"] == pytest.approx(minority), row["member"]
      assert row["w_always_on"] > row["w_label"]  # the always-on features outvote it


def test_wilson_features():
  """The construction: feature 1 is the label, 2 and 3 are 1, one or five features of its own."""
  module = sys.modules[type(registry.load(NAME)).__module__]
  data = module.wilson_data(jax.random.key(1), 10, 4, 0.6)
  x = np.concatenate([np.asarray(data.x_train), np.asarray(data.x_test)])
  y = np.concatenate([np.asarray(data.y_train), np.asarray(data.y_test)])[:, 0]
  assert x.shape == (14, 3 + 5 * 14)
  assert np.sum(y[:10] > 0) == 6
  np.testing.assert_array_equal(x[:, 0], y)
  np.testing.assert_array_equal(x[:, 1:3], 1.0)
  own = x[:, 3:].reshape(14, 14, 5)  # example i's block is row i of the block diagonal
  for i in range(14):
    expected = np.zeros((14, 5))
    expected[i, : 1 if y[i] > 0 else 5] = 1.0
    np.testing.assert_array_equal(own[i], expected)


@pytest.mark.parametrize(
  ("field", "value"), [("positive_share", "0.4"), ("num_train", "1"), ("steps", "0")]
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)


def test_verdicts_judge_every_published_claim(summary):
  """SGD's error is 0 and every adaptive method errs on exactly the −1 points: both reproduce."""
  experiment = registry.load(NAME)
  assert set(summary["verdicts"]) == set(experiment.PUBLISHED)
  assert summary["verdicts"] == dict.fromkeys(experiment.PUBLISHED, "reproduced")
  for name, error in summary["adaptive_test_error"].items():
    gap = abs(error - summary["minority_share"]) / summary["minority_share"]
    assert summary["adaptive_error_gap_to_minority_share"][name] == pytest.approx(gap)


def test_claims_are_judged_at_every_fitted_rate_where_they_are_weakest():
  """A rate that does not fit the training set is not judged; among the fitted ones each claim
  takes its worst; a method with no fitted rate cannot be judged. Hand-made runs."""
  experiment, config = registry.load(NAME), load_config(QUICK)
  minority = experiment.summarize(config, Results([], []))["minority_share"]

  def row(optimizer, rate, test_error, train_error=0.0, loss=1e-9):
    return {
      "member": f"{optimizer}@{rate:g}",
      "optimizer": optimizer,
      "learning_rate": rate,
      "final_train_loss": loss,
      "train_error": train_error,
      "test_error": test_error,
    }

  table = [
    row("sgd", 0.1, 0.0),
    row("sgd", 0.3, 0.02),  # fitted, errs: SGD's claim fails at this rate
    row("sgd", 1.0, 0.5, train_error=0.4, loss=float("nan")),  # diverged: not judged
    row("adagrad", 0.01, minority),
    row("adagrad", 0.1, minority - 0.1),  # the farthest from 1 − p is judged
    row("rmsprop", 0.001, minority, train_error=0.05),  # fits at no rate
    row("adam", 0.01, minority),
  ]
  summary = experiment.summarize(config, Results(table, []))
  assert summary["sgd_test_error"] == 0.02
  assert summary["fitted_rates"] == {
    "sgd": [0.1, 0.3],
    "adagrad": [0.01, 0.1],
    "rmsprop": [],
    "adam": [0.01],
  }
  assert summary["adaptive_test_error"] == {
    "adagrad": minority - 0.1,
    "rmsprop": None,
    "adam": minority,
  }
  gaps = summary["adaptive_error_gap_to_minority_share"]
  assert gaps["adagrad"] == pytest.approx(0.1 / minority)
  assert gaps["rmsprop"] is None and gaps["adam"] == 0.0
  assert experiment.verdicts(summary) == {
    "sgd_test_error": "not reproduced",
    "adaptive_test_error": "not reproduced",
  }
  table = [r for r in table if r["optimizer"] != "adagrad" and r["learning_rate"] != 0.3]
  assert experiment.verdicts(experiment.summarize(config, Results(table, []))) == {
    "sgd_test_error": "reproduced",
    "adaptive_test_error": "inconclusive",  # RMSProp fits at no rate
  }
