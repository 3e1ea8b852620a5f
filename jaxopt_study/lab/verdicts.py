"""Error bars for an experiment's claims: `mean_and_std(values)`, the mean and the sample standard
deviation over seeds, as a dict for `summary.json`."""

from collections.abc import Sequence

import numpy as np


def mean_and_std(values: Sequence[float]) -> dict[str, float | int]:
  """{"mean", "std" (sample standard deviation, ddof = 1; 0 for one value), "n"} of `values`."""
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"mean_and_std: values must be a non-empty list of numbers, got {values!r}")
  std = float(array.std(ddof=1)) if array.size > 1 else 0.0
  return {"mean": float(array.mean()), "std": std, "n": int(array.size)}
