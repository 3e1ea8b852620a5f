"""The first-order optimizer comparison (§8.5.4): its quick config through the CLI, its verdict."""

import pytest
from quick_runs import quick_run_fixtures

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "optimizers"
finished_run, summary = quick_run_fixtures(NAME)


def test_the_best_optimizer_has_the_lowest_final_loss(summary):
  losses = summary["final_loss_by_optimizer"]
  assert summary["best_optimizer"] == min(losses, key=losses.get)


def test_verdict_asks_whether_an_adaptive_rate_method_wins(summary):
  """Schaul et al. (2014): the adaptive-rate family is the most robust; judged on this task by
  whether its best optimizer belongs to it, and undecided while any best rate sits at its grid's
  edge (a wider grid could change the ranking)."""
  adaptive = summary["best_optimizer"] not in ("sgd", "momentum", "nesterov")
  assert summary["best_is_adaptive_rate"] == float(adaptive)
  edge = summary["best_learning_rate_at_grid_edge"]
  assert summary["any_best_rate_at_grid_edge"] == bool(edge)
  expected = "inconclusive" if edge else ("reproduced" if adaptive else "not reproduced")
  assert summary["verdicts"] == {"best_optimizer": expected}
