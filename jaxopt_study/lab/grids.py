"""Learning-rate grids of experiments that compare optimizers: checked before anything compiles,
and their best members picked from the results table.

A config's `optimizers` field maps an optimizer's name (a key of `optim.OPTIMIZERS`) to its
hyperparameters by their Optax names, `learning_rate` being the list of rates searched; any other
hyperparameter given as a list (e.g. Newton's `damping`) is one more axis of the grid, as in a
`jaxopt_study.sweep`.
"""

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import ml_collections

from jaxopt_study import optim


def check_learning_rate_grids(
  optimizers: ml_collections.ConfigDict, allowed: Collection[str] | None = None
) -> None:
  """Raises ValueError naming `optimizers.NAME` for an unknown name or a grid that cannot run.

  Every value of every axis is passed to the constructor with the other hyperparameters (the other
  axes at their first values), so a negative rate or a bad decay is refused here, by the
  constructor's own checks.

  Args:
    optimizers: name -> hyperparameters, `learning_rate` a non-empty list; other lists are axes.
    allowed: the names this experiment accepts (default: every key of `optim.OPTIMIZERS`).
  """
  allowed = sorted(optim.OPTIMIZERS if allowed is None else allowed)
  for name, hyper in optimizers.items():
    if name not in allowed:
      raise ValueError(f"optimizers.{name}: unknown optimizer here; known: {', '.join(allowed)}")
    grid = hyper.get("learning_rate")
    if not isinstance(grid, list | tuple) or not grid:
      raise ValueError(f"optimizers.{name}.learning_rate={grid!r}: must be a non-empty list")
    hyper = hyper.to_dict()
    axes = {k: v for k, v in hyper.items() if isinstance(v, list | tuple)}
    for axis, values in axes.items():
      if not values:
        raise ValueError(f"optimizers.{name}.{axis}=[]: must be a non-empty list")
    firsts = {k: v[0] for k, v in axes.items()}
    for axis, values in axes.items():
      for value in values:
        try:
          optim.OPTIMIZERS[name](**{**hyper, **firsts, axis: value})
        except (TypeError, ValueError) as error:
          raise ValueError(f"optimizers.{name}: {error}") from error


def best_rows(
  table: Sequence[Mapping[str, Any]], group: str, metric: str
) -> dict[Any, Mapping[str, Any]]:
  """Per value of the column `group` (e.g. the method), the row with the lowest finite `metric`.

  A grid member that diverged (a non-finite or missing metric) is never the best; a group whose
  every member diverged is left out. Ties keep the first row.
  """
  best: dict[Any, Mapping[str, Any]] = {}
  for row in table:
    value = row.get(metric)
    if not isinstance(value, int | float) or not math.isfinite(value):
      continue
    current = best.get(row[group])
    if current is None or value < current[metric]:
      best[row[group]] = row
  return best
