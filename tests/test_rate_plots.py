"""`jaxopt_study.lab.rate_plots`: each method's curve at its best learning rate, and a final value
against the learning rate."""

import math

from jaxopt_study.lab import rate_plots

TABLE = [
  {"member": "gd@0.1", "method": "gd", "learning_rate": 0.1, "loss": 2.0},
  {"member": "gd@0.3", "method": "gd", "learning_rate": 0.3, "loss": math.nan},
  {"member": "gd@1", "method": "gd", "learning_rate": 1.0, "loss": 1.0},
  {"member": "cd@0.1", "method": "cd", "learning_rate": 0.1, "loss": 3.0},
]
CURVES = {row["member"]: ([0, 10], [5.0, row["loss"]]) for row in TABLE}


def test_best_rate_curves_keep_each_methods_best_finite_member():
  series = rate_plots.best_rate_curves(
    TABLE, CURVES, group="method", select="loss", label=str.upper
  )
  assert series == {"GD (lr 1)": CURVES["gd@1"], "CD (lr 0.1)": CURVES["cd@0.1"]}


def test_rate_curves_are_the_metric_against_the_rate_per_method():
  series = rate_plots.rate_curves(TABLE, "loss", group="method", shift=1.0)
  assert series["cd"] == ([0.1], [2.0])
  rates, values = series["gd"]
  assert rates == [0.1, 0.3, 1.0]
  assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 0.0
  reordered = rate_plots.rate_curves(TABLE[::-1], "loss", group="method", shift=1.0)
  assert reordered["gd"][0] == [0.1, 0.3, 1.0] and reordered["gd"][1][::2] == [1.0, 0.0]


def test_plots_are_written(tmp_path):
  best = rate_plots.best_rate_plot(
    TABLE, CURVES, tmp_path / "best.png", group="method", select="loss", title="t", ylabel="y"
  )
  rates = rate_plots.rate_plot(
    TABLE, "loss", tmp_path / "rates.png", group="method", title="t", ylabel="y"
  )
  assert best.stat().st_size > 0 and rates.stat().st_size > 0
