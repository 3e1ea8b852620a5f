"""Small helpers the experiments share for reading curves back and fitting power laws.

* `read_curves(path, metric)`: one metric of a long-format `history.csv`, per member
  (`history_curves(rows, metric)` for the rows in memory).
* `mean_by_prefix(curves)`: the mean curve of the members "GROUP/..." of each group (e.g. the
  seeds of a method).
* `log_slope(x, y)`: the least-squares slope of log y against log x (a power-law exponent).
"""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxopt_study.results import read_csv


def read_curves(path: Path, metric: str) -> dict[str, tuple[list[float], list[float]]]:
  """{member: (steps, values)} of `metric` in a `history.csv`, in file order."""
  return history_curves(read_csv(path), metric)


def history_curves(
  rows: Iterable[Mapping[str, Any]], metric: str
) -> dict[str, tuple[list[float], list[float]]]:
  """{member: (steps, values)} of `metric` in long-format history rows, in their order."""
  curves: dict[str, tuple[list[float], list[float]]] = {}
  for row in rows:
    if row["metric"] == metric:
      steps, values = curves.setdefault(row["member"], ([], []))
      steps.append(row["step"])
      values.append(row["value"])
  return curves


def mean_by_prefix(
  curves: Mapping[str, tuple[list[float], list[float]]],
) -> dict[str, tuple[list[float], np.ndarray]]:
  """{group: (steps, mean values)} over the members named "group/..." (the text before the first
  "/"), which share their steps; groups in order of first appearance."""
  groups: dict[str, list[tuple[list[float], list[float]]]] = {}
  for member, curve in curves.items():
    groups.setdefault(member.split("/")[0], []).append(curve)
  return {
    group: (runs[0][0], np.mean([values for _, values in runs], axis=0))
    for group, runs in groups.items()
  }


def log_slope(x, y) -> float:
  """Least-squares slope of log y against log x; every x and y must be positive."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  if np.any(x <= 0) or np.any(y <= 0):
    raise ValueError("log_slope: x and y must be positive")
  return float(np.polyfit(np.log(x), np.log(y), 1)[0])
