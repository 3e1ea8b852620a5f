"""`jaxopt_study.lab.grids`: learning-rate grids refused with the field named, before compiling."""

import ml_collections
import pytest

from jaxopt_study.lab import grids


def _grids(**optimizers) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(optimizers)


def test_accepts_good_grids():
  grids.check_learning_rate_grids(
    _grids(
      sgd={"learning_rate": [0.1, 1.0]},
      adam={"learning_rate": [1e-3], "b1": 0.9},
      newton={"learning_rate": [1.0], "damping": [1e-2, 1e-1], "adaptive": True},
    )
  )


@pytest.mark.parametrize(
  ("optimizers", "allowed", "message"),
  [
    ({"nope": {"learning_rate": [0.1]}}, None, "optimizers.nope: unknown"),
    ({"adam": {"learning_rate": [0.1]}}, ("sgd",), "optimizers.adam: unknown"),
    ({"sgd": {"learning_rate": []}}, None, "optimizers.sgd.learning_rate"),
    ({"sgd": {"learning_rate": 0.1}}, None, "optimizers.sgd.learning_rate"),
    ({"sgd": {"learning_rate": [-1.0]}}, None, "optimizers.sgd: sgd: learning_rate=-1.0"),
    ({"rmsprop": {"learning_rate": [0.1], "decay": 1.5}}, None, "decay=1.5"),
    ({"sgd": {"learning_rate": [0.1], "bogus": 1}}, None, "optimizers.sgd"),
    ({"newton": {"learning_rate": [1.0], "damping": []}}, None, "optimizers.newton.damping"),
    ({"newton": {"learning_rate": [1.0], "damping": [0.1, -1.0]}}, None, "damping=-1.0"),
    ({"newton": {"learning_rate": [1.0], "damping": [0.0], "adaptive": True}}, None, "damping=0.0"),
  ],
)
def test_refuses_bad_grids_naming_the_field(optimizers, allowed, message):
  with pytest.raises(ValueError, match=message.replace(".", r"\.")):
    grids.check_learning_rate_grids(_grids(**optimizers), allowed)


def test_best_rows_picks_the_lowest_finite_metric_per_group():
  table = [
    {"method": "gd", "lr": 0.1, "loss": 2.0},
    {"method": "gd", "lr": 0.3, "loss": float("nan")},
    {"method": "gd", "lr": 0.2, "loss": 1.0},
    {"method": "cd", "lr": 0.1, "loss": 3.0},
    {"method": "cd", "lr": 0.2, "loss": 3.0},
    {"method": "bad", "lr": 0.1, "loss": float("inf")},
    {"method": "bad", "lr": 0.2, "loss": ""},  # an empty CSV cell
  ]
  best = grids.best_rows(table, "method", "loss")
  assert set(best) == {"gd", "cd"}
  assert best["gd"]["lr"] == 0.2
  assert best["cd"]["lr"] == 0.1  # a tie keeps the first row
