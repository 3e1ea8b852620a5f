"""The init-scale × batch-size × learning-rate sweep (§8.4 × §8.1.3): quick config, its verdicts."""

import numpy as np
import pytest
from quick_runs import quick_run_fixtures

from jaxopt_study.experiment import verdict
from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "sweep_init_batch"
finished_run, summary = quick_run_fixtures(NAME)


def test_verdicts_judge_the_rate_slope_and_the_u_shape(summary):
  rates = summary["best_learning_rate_by_batch_size"]
  sizes = np.log([int(b) for b in rates])
  slope = np.polyfit(sizes, np.log(list(rates.values())), 1)[0]
  assert summary["best_learning_rate_batch_size_log_slope"] == pytest.approx(slope)
  losses = list(summary["best_train_loss_by_init_scale"].values())  # scales in increasing order
  u_shape = min(losses[0], losses[-1]) / min(losses[1:-1])
  assert summary["init_scale_edge_over_interior_train_loss"] == pytest.approx(u_shape)
  at_edge = summary["best_learning_rate_at_grid_edge"]
  assert summary["verdicts"] == {
    "best_learning_rate_by_batch_size": verdict(None if at_edge else slope > 0),
    "best_train_loss_by_init_scale": verdict(u_shape > 1),
  }


def test_batch_sizes_are_compared_at_equal_epochs_over_a_bracketing_rate_grid(
  finished_run, summary
):
  """Every batch size trains the same epochs (200 steps of 16 = 50 steps of 64 examples), and
  the flag says whether a batch size's best rate sits at an end of the rate grid."""
  table = read_csv(finished_run / "results.csv")
  steps = {int(r["batch_size"]): int(r["steps"]) for r in table}
  assert steps == {16: 200, 64: 50}
  epochs = summary["epochs_by_batch_size"]
  assert epochs["16"] == pytest.approx(epochs["64"]) == pytest.approx(200 * 16 / 1347)
  history = read_csv(finished_run / "history.csv")
  last = {}
  for row in history:
    last[row["member"]] = max(last.get(row["member"], 0), row["step"])
  assert {last[r["member"]] for r in table if r["batch_size"] == 64} == {50}
  rates = sorted({r["learning_rate"] for r in table})
  best = summary["best_learning_rate_by_batch_size"].values()
  assert summary["best_learning_rate_at_grid_edge"] == any(r in (rates[0], rates[-1]) for r in best)
