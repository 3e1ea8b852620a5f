"""The init-scale × batch-size × learning-rate sweep (§8.4 × §8.1.3): quick config, its verdicts."""

import numpy as np
import pytest
from quick_runs import quick_run_fixtures

from jaxopt_study.experiment import verdict

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
  assert summary["verdicts"] == {
    "best_learning_rate_by_batch_size": verdict(slope > 0),
    "best_train_loss_by_init_scale": verdict(u_shape > 1),
  }
