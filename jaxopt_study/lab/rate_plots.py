"""Figures of the experiments that tune every method over a grid of learning rates.

§8.5.4 compares optimization algorithms each at its own tuned learning rate, so these experiments
draw two figures: every method's curve at the best rate of its grid (`best_rate_plot`), and a final
value against the learning rate, one line per method (`rate_plot`), which shows whether each grid
brackets its best rate.
"""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxopt_study import report
from jaxopt_study.lab import grids

Curves = dict[str, tuple[list[float], list[float]]]


def best_rate_curves(
  table: Sequence[Mapping[str, Any]],
  curves: Mapping[str, tuple[list[float], list[float]]],
  *,
  group: str | tuple[str, ...] = "optimizer",
  select: str = "final_train_loss",
  label: Callable[[Any], str] = str,
) -> Curves:
  """`curves` of each `group`'s best member (lowest finite `select`, `grids.best_rows`), labelled
  "LABEL (lr RATE)" with LABEL = `label(group value)`."""
  return {
    f"{label(key)} (lr {row['learning_rate']:g})": curves[row["member"]]
    for key, row in grids.best_rows(table, group, select).items()
  }


def rate_curves(
  table: Sequence[Mapping[str, Any]], metric: str, *, group: str = "optimizer", shift: float = 0.0
) -> Curves:
  """`metric` − `shift` of every row against its learning rate, one curve per value of `group`,
  in increasing rate."""
  series = grids.curves_over_column(table, lambda row: row[group], metric)
  return {key: (rates, [v - shift for v in values]) for key, (rates, values) in series.items()}


def best_rate_plot(
  table: Sequence[Mapping[str, Any]],
  curves: Mapping[str, tuple[list[float], list[float]]],
  path: Path,
  *,
  group: str | tuple[str, ...] = "optimizer",
  select: str = "final_train_loss",
  label: Callable[[Any], str] = str,
  **plot: Any,
) -> Path:
  """`best_rate_curves` as a line plot (`report.line_plot` options in `plot`; by default against
  the step, log y)."""
  series = best_rate_curves(table, curves, group=group, select=select, label=label)
  return report.line_plot(series, path, **{"xlabel": "step", "logy": True, **plot})


def rate_plot(
  table: Sequence[Mapping[str, Any]],
  metric: str,
  path: Path,
  *,
  group: str = "optimizer",
  shift: float = 0.0,
  **plot: Any,
) -> Path:
  """`rate_curves` as a line plot against the learning rate, log x (`report.line_plot` options in
  `plot`)."""
  series = rate_curves(table, metric, group=group, shift=shift)
  return report.line_plot(series, path, **{"xlabel": "learning rate", "logx": True, **plot})
