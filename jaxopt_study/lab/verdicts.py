"""Error bars for an experiment's claims: `mean_and_std(values)`, the mean and the sample standard
deviation over seeds, as a dict for `summary.json`; `mean_and_standard_error(values)`, the mean
and its standard error, the pair a criterion's `standard_error=` judges."""

from collections.abc import Sequence

import numpy as np


def mean_and_std(values: Sequence[float]) -> dict[str, float | int]:
  """{"mean", "std" (sample standard deviation, ddof = 1; 0 for one value), "n"} of `values`."""
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"mean_and_std: values must be a non-empty list of numbers, got {values!r}")
  std = float(array.std(ddof=1)) if array.size > 1 else 0.0
  return {"mean": float(array.mean()), "std": std, "n": int(array.size)}


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float | None]:
  """The mean over seeds and its standard error s/√n (None for one seed)."""
  array = np.asarray(values, float)
  if array.size < 2:
    return float(array.mean()), None
  return float(array.mean()), float(array.std(ddof=1) / np.sqrt(array.size))
