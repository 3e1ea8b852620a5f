"""Learning-rate grids of experiments that compare optimizers, checked before anything compiles.

A config's `optimizers` field maps an optimizer's name (a key of `optim.OPTIMIZERS`) to its
hyperparameters by their Optax names, `learning_rate` being the list of rates searched.
"""

from collections.abc import Collection

import ml_collections

from jaxopt_study import optim


def check_learning_rate_grids(
  optimizers: ml_collections.ConfigDict, allowed: Collection[str] | None = None
) -> None:
  """Raises ValueError naming `optimizers.NAME` for an unknown name or a grid that cannot run.

  Every rate of every grid is passed to the constructor with the other hyperparameters, so a
  negative rate or a bad decay is refused here, by the constructor's own checks.

  Args:
    optimizers: name -> hyperparameters, `learning_rate` a non-empty list.
    allowed: the names this experiment accepts (default: every key of `optim.OPTIMIZERS`).
  """
  allowed = sorted(optim.OPTIMIZERS if allowed is None else allowed)
  for name, hyper in optimizers.items():
    if name not in allowed:
      raise ValueError(f"optimizers.{name}: unknown optimizer here; known: {', '.join(allowed)}")
    grid = hyper.get("learning_rate")
    if not isinstance(grid, list | tuple) or not grid:
      raise ValueError(f"optimizers.{name}.learning_rate={grid!r}: must be a non-empty list")
    for lr in grid:
      try:
        optim.OPTIMIZERS[name](**{**hyper.to_dict(), "learning_rate": lr})
      except (TypeError, ValueError) as error:
        raise ValueError(f"optimizers.{name}: {error}") from error
