"""The experiment of a config without an `experiment` field: which member its summary calls best."""

import math
import textwrap

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
  config = ml_collections.ConfigDict({"early_stopping": None})  # switched off
  summary = OwnProblem().summarize(config, Results(TABLE, []))
  assert summary["best_member"] == "m0002" and summary["selected_by"] == "final_test_loss"
  assert summary["diverged_members"] == ["m0003"]


DIGITS = {
  "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
  "model": {"name": "mlp", "width": 8, "depth": 1},
}


def test_with_early_stopping_the_best_member_has_the_best_kept_value():
  """Also where the config leaves early stopping to its default, test_error for a built-in
  classifier (the summary went by the final loss there); a NaN final loss rules a member out,
  and ties of the kept value (a count) go to the lower final loss."""
  table = [
    _row("m0000", math.nan, 0.05),
    _row("m0001", 0.4, 0.10),
    _row("m0002", 0.3, 0.10),
    _row("m0003", 0.1, 0.01, diverged=True),
  ]
  for stopping in ({"early_stopping": "test_error"}, {}):
    config = ml_collections.ConfigDict(DIGITS | stopping)
    summary = OwnProblem().summarize(config, Results(table, []))
    assert summary["best_member"] == "m0002" and summary["selected_by"] == "best_test_error"
    assert summary["best_test_error"] == 0.10


PROBLEM = """
import jax.numpy as jnp
from jaxopt_study import Problem, data, losses, models

def make_problem():
  d = data.load_digits()
  return Problem(
    model=lambda rngs: models.MLP(64, 10, width=4, depth=1, rngs=rngs),
    loss=lambda m, b: losses.softmax_cross_entropy(m(b[0]), b[1]),
    train_data=(d.x_train, d.y_train), heldout_data=(d.x_test, d.y_test),
    metrics={"acc": lambda m, b: jnp.mean(m(b[0]).argmax(-1) == b[1])},
    higher_is_better=("acc",),
  )
"""


def test_a_maximized_early_stopping_metric_picks_its_highest_kept_value(tmp_path):
  (tmp_path / "problem.py").write_text(textwrap.dedent(PROBLEM))
  config = ml_collections.ConfigDict(
    {"problem": f"{tmp_path / 'problem.py'}:make_problem", "early_stopping": "test_acc"}
  )
  table = [
    {"member": m, "final_test_loss": 0.5, "best_test_acc": a, "diverged": False}
    for m, a in (("m0000", 0.90), ("m0001", 0.97), ("m0002", 0.93))
  ]
  summary = OwnProblem().summarize(config, Results(table, []))
  assert summary["best_member"] == "m0001" and summary["best_test_acc"] == 0.97
