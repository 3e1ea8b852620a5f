"""The experiment of a config without an `experiment` field: which member its summary calls best."""

import math

import ml_collections

from jaxopt_study.experiment import Results
from jaxopt_study.own_problem import OwnProblem


def _row(member: str, test_loss: float, best_error: float, diverged: bool = False) -> dict:
  return {
    "member": member,
    "final_train_loss": 0.5,
    "final_test_loss": test_loss,
    "best_test_error": best_error,
    "diverged": diverged,
  }


TABLE = [
  _row("m0000", math.nan, 0.05),  # a NaN held-out loss (labels outside the classes, say)
  _row("m0001", 0.4, 0.20),
  _row("m0002", 0.3, 0.10),
  _row("m0003", 0.1, 0.01, diverged=True),
]


def test_the_best_member_has_the_lowest_finite_final_held_out_loss():
  """A NaN loss is never the best (Python's min over NaN keys kept the first member)."""
  summary = OwnProblem().summarize(ml_collections.ConfigDict({}), Results(TABLE, []))
  assert summary["best_member"] == "m0002" and summary["selected_by"] == "final_test_loss"
  assert summary["diverged_members"] == ["m0003"]


def test_with_early_stopping_the_best_member_has_the_best_kept_value():
  config = ml_collections.ConfigDict(
    {
      "early_stopping": "test_error",
      "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
      "model": {"name": "mlp", "width": 8, "depth": 1},
    }
  )
  summary = OwnProblem().summarize(config, Results(TABLE, []))
  assert summary["best_member"] == "m0000" and summary["selected_by"] == "best_test_error"
  assert summary["best_test_error"] == 0.05
