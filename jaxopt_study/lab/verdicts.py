"""Verdicts and error bars for an experiment's claims (STYLE rule 20: a claim carries its
criterion in code).

* `verdict(holds)`: "reproduced", "not reproduced", or "inconclusive" when the measurement cannot
  decide (None).
* `mean_and_std(values)`: the mean and the sample standard deviation over seeds, as a dict for
  `summary.json`.
"""

from collections.abc import Sequence

import numpy as np

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


def verdict(holds: bool | None) -> str:
  """The verdict of a criterion that holds (True), fails (False) or cannot be decided (None)."""
  if holds is None:
    return INCONCLUSIVE
  return REPRODUCED if bool(holds) else NOT_REPRODUCED


def mean_and_std(values: Sequence[float]) -> dict[str, float | int]:
  """{"mean", "std" (sample standard deviation, ddof = 1; 0 for one value), "n"} of `values`."""
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"mean_and_std: values must be a non-empty list of numbers, got {values!r}")
  std = float(array.std(ddof=1)) if array.size > 1 else 0.0
  return {"mean": float(array.mean()), "std": std, "n": int(array.size)}
